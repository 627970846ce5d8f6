"""The continuous risk alarm: raise above one level, clear below a lower one after a hold time."""

from __future__ import annotations

import math

import pytest

from models.errors import InvalidFieldError
from streams.hysteresis import HysteresisConfig, RiskHysteresis, count_transitions


def test_a_wandering_risk_raises_once_where_a_line_flaps():
    cfg = HysteresisConfig(raise_at=0.7, clear_below=0.5, hold_s=3)
    risk = [0.6, 0.72, 0.68, 0.71, 0.69, 0.74, 0.45, 0.73, 0.3, 0.2, 0.1, 0.1]
    h = RiskHysteresis(cfg)
    states = [h.update("p", float(t), r) for t, r in enumerate(risk)]
    line = [r >= cfg.raise_at for r in risk]
    assert count_transitions(line) == 4 and count_transitions(states) == 1
    assert states == [False] + [True] * 10 + [False]  # cleared 3 s after it fell below 0.5 for good (t=8 -> t=11)


def test_patients_are_independent_and_order_and_gaps_are_handled():
    h = RiskHysteresis(HysteresisConfig(raise_at=0.7, clear_below=0.5, hold_s=2, reset_after_s=30))
    assert h.update("a", 10.0, 0.9) is True
    assert h.update("b", 10.0, 0.1) is False
    assert h.update("a", 9.0, 0.0) is True  # out of order: ignored
    assert h.update("a", 10.0, 0.0) is True  # duplicate: ignored
    assert h.update("a", 11.0, math.nan) is True  # no score this hop: state kept
    assert h.update("a", 12.0, 0.4) is True and h.update("a", 13.0, 0.4) is True and h.update("a", 14.0, 0.4) is False
    assert h.update("a", 15.0, 0.9) is True
    assert h.update("a", 60.0, 0.6) is False  # 45 s without windows: the patient starts afresh


@pytest.mark.parametrize("kw, field", [({"raise_at": 1.2}, "hysteresis.raise_at"), ({"clear_below": 0.8}, "hysteresis.clear_below"),
                                       ({"hold_s": -1}, "hysteresis.hold_s")])
def test_bad_settings_are_named(kw, field):
    with pytest.raises(InvalidFieldError, match=field):
        HysteresisConfig(**kw)


def test_unknown_config_keys_are_refused():
    assert HysteresisConfig.from_dict({"raise_at": 0.8, "hold_s": 5}) == HysteresisConfig(raise_at=0.8, hold_s=5.0)
    with pytest.raises(InvalidFieldError, match="hysteresis has unknown keys"):
        HysteresisConfig.from_dict({"raise": 0.8})


def test_a_restarted_stream_resets_and_forget_releases():
    h = RiskHysteresis(HysteresisConfig(raise_at=0.7, clear_below=0.5, hold_s=5, reset_after_s=30))
    assert h.update("a", 290.0, 0.9) is True
    assert h.update("a", 16.0, 0.2) is False  # the monitor restarted its stream from the beginning: a fresh state
    h.forget("a")
    assert h._state == {}
