"""SlackFit's choice of (subnet, batch) from a request's slack and the queue (holmes.slackfit)."""

from __future__ import annotations

import pytest

from holmes.slackfit import SlackFitPolicy, front
from models.errors import InvalidFieldError

# three subnets, service time roughly linear in batch, bigger = slower and more accurate; "slow_bad" is off the front
LAT = {
    "small": {1: 0.5, 4: 1.0, 16: 3.0, 64: 10.0},
    "mid": {1: 1.0, 4: 2.5, 16: 8.0, 64: 30.0},
    "large": {1: 2.0, 4: 5.0, 16: 16.0, 64: 60.0},
    "slow_bad": {1: 3.0, 4: 7.0, 16: 20.0, 64: 80.0},
}
ACC = {"small": 55.0, "mid": 58.0, "large": 62.0, "slow_bad": 50.0}


def test_front_drops_dominated_subnets():
    assert front(LAT, ACC) == ["small", "mid", "large"]


def test_light_load_gets_the_most_accurate_subnet():
    p = SlackFitPolicy(LAT, ACC)
    assert p.choose(slack_ms=100.0, queued=1) == ("large", 1)
    assert p.choose(slack_ms=100.0, queued=64) == ("large", 64)


def test_a_burst_trades_accuracy_for_batch_within_the_slack():
    p = SlackFitPolicy(LAT, ACC)
    sub, b = p.choose(slack_ms=12.0, queued=64)
    assert LAT[sub][b] <= 12.0
    assert b >= 16  # drains the queue in large batches rather than serving one request accurately
    # never more accurate than fits: with 3 ms of slack and 64 queued, nothing slower than 3 ms is chosen
    sub, b = p.choose(slack_ms=3.0, queued=64)
    assert LAT[sub][b] <= 3.0


def test_no_slack_gets_the_fastest_drain():
    p = SlackFitPolicy(LAT, ACC)
    assert p.choose(slack_ms=-5.0, queued=20) == ("small", 16)


def test_fixed_baselines():
    assert SlackFitPolicy(LAT, ACC, "largest").choose(1.0, 5) == ("large", 4)
    assert SlackFitPolicy(LAT, ACC, "smallest").choose(1000.0, 70) == ("small", 64)


def test_bad_settings_are_refused():
    with pytest.raises(InvalidFieldError) as e:
        SlackFitPolicy(LAT, ACC, "greedy")
    assert e.value.field == "mode"
    with pytest.raises(InvalidFieldError) as e:
        SlackFitPolicy(LAT, {"small": 1.0})
    assert e.value.field == "accuracy"
