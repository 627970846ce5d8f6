"""``ConsumerConfig.routine_hold_s``: routine windows wait for company (fewer, larger batches and service calls), verdicts
never do, and a full batch or a shutdown scores at once; an alarm patient's earlier windows go before its verdict where
the verdict scorer shares per-patient state."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from models.errors import InvalidFieldError
from streams.broker import KafkaSettings
from streams.consumer import ConsumerConfig, StreamConsumer


def _consumer(hold_s: float, max_batch: int = 3) -> StreamConsumer:
    return StreamConsumer(KafkaSettings("127.0.0.1:9"), scorer=None, config=ConsumerConfig(routine_hold_s=hold_s, max_batch=max_batch))


def _ready(age_s: float):
    return SimpleNamespace(ready_unix_s=time.time() - age_s)


def test_routine_windows_wait_until_the_oldest_has_waited_the_hold():
    c = _consumer(0.2)
    c._pending = [_ready(0.05), _ready(0.01)]
    assert c._holding(1.0)
    c._pending = [_ready(0.3), _ready(0.01)]  # the oldest waited long enough: score them all
    assert not c._holding(1.0)
    c._pending = [_ready(0.0)] * 3  # a full batch goes at once
    assert not c._holding(1.0)
    c._pending = [_ready(0.0)]
    assert not c._holding(float("inf"))  # close(): everything ready is scored
    assert not _consumer(0.0)._holding(1.0)  # off by default


def test_hold_must_stay_below_the_routine_deadline():
    with pytest.raises(InvalidFieldError, match="routine_hold_s must be >= 0 and below the routine deadline"):
        ConsumerConfig(routine_hold_s=1.5)
    with pytest.raises(InvalidFieldError, match="routine_hold_s"):
        ConsumerConfig(routine_hold_s=-0.1)


def test_the_alarm_patients_earlier_windows_are_taken_out_in_order():
    """For a verdict scorer sharing per-patient state with the routine one (VerdictBlend): the alarm patients' routine
    windows ending before their alarm window leave the routine queue, oldest first; others stay queued."""
    c = _consumer(0.0)
    w = lambda pid, end: SimpleNamespace(patient_id=pid, end_s=end)  # noqa: E731
    a298, a297, b298, a301 = w("a", 298.0), w("a", 297.0), w("b", 298.0), w("a", 301.0)
    c._pending = [a298, b298, a297, a301]
    assert c._earlier_windows([w("a", 300.0)]) == [a297, a298]
    assert c._pending == [b298, a301]
    assert c._earlier_windows([w("c", 300.0)]) == [] and c._pending == [b298, a301]
    c._pending = [a298, a301, a297]  # two alarms of one patient: only what precedes the first leaves the queue
    assert c._earlier_windows([w("a", 305.0), w("a", 300.0)]) == [a297, a298] and c._pending == [a301]


def test_a_full_backlog_is_never_held():
    """With max_pending below max_batch, a full backlog scores at once (else the loop would spin: no poll, no scoring)."""
    c = StreamConsumer(KafkaSettings("127.0.0.1:9"), scorer=None,
                       config=ConsumerConfig(routine_hold_s=0.2, max_batch=8, max_pending=2))
    c._pending = [_ready(0.0), _ready(0.0)]
    assert not c._holding(1.0)
    c._pending = [_ready(0.0)]
    assert c._holding(1.0)
