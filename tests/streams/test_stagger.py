"""``holmes replay --stagger-s``: patients start spread out, so their alarms arrive spread out as on a ward."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import InvalidFieldError
from streams.replay import build_streams, replay
from streams.schemas import decode_alarm, decode_chunk


class _Collect:
    """Keeps what a replay sends (its scheduling is the unit under test, not the broker)."""

    def __init__(self):
        self.sent = []

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, value))

    def flush(self):
        pass

    def close(self):
        pass


def _run(stream_records, stagger_s):
    p = _Collect()
    streams = build_streams(stream_records[:4])
    stats = replay(None, streams, speed=1000.0, start_s=290.0, end_s=300.0, progress=False, producer=p, stagger_s=stagger_s)
    alarms = {a.patient_id: a for a in (decode_alarm(v) for t, v in p.sent if t.endswith("alarms"))}
    chunks = [decode_chunk(v) for t, v in p.sent if t.endswith("waveforms")]
    return streams, stats, alarms, chunks


def test_alarms_arrive_spread_over_the_stagger(stream_records):
    streams, stats, alarms, chunks = _run(stream_records, 60.0)
    assert stats.chunks == 4 * 10 and stats.alarms == 4  # every chunk and every alarm still sent, once
    t = np.array([alarms[s.patient_id].capture_unix_s for s in streams])
    # patient i starts i/4 * 60 s later; at 1000x real time that is 15 ms of wall clock apart (plus the sub-chunk phase)
    gaps = np.diff(t) * 1000.0
    assert np.allclose(gaps, 15.0 + 0.25, atol=1e-3), gaps  # unix-time floats: ~1e-4 ms resolution
    for s in streams:  # each patient's own chunks stay in order, one per record second
        seqs = [c.seq for c in chunks if c.patient_id == s.patient_id]
        assert seqs == list(range(290, 300))


def test_no_stagger_sends_alarms_in_the_same_second(stream_records):
    streams, _, alarms, _ = _run(stream_records, 0.0)
    t = np.array([alarms[s.patient_id].capture_unix_s for s in streams])
    assert (t.max() - t.min()) * 1000.0 < 1.0  # within one chunk interval at 1000x


def test_bad_stagger_is_named(stream_records):
    with pytest.raises(InvalidFieldError, match="stagger_s must be a finite number of seconds >= 0, got -1"):
        replay(None, build_streams(stream_records[:2]), speed=None, start_s=290.0, progress=False, producer=_Collect(), stagger_s=-1)


def test_alarm_every_k_keeps_every_chunk_and_every_kth_alarm(stream_records):
    p = _Collect()
    streams = build_streams(stream_records[:4])
    stats = replay(None, streams, speed=None, start_s=290.0, end_s=300.0, progress=False, producer=p, alarm_every=2)
    alarms = [decode_alarm(v).patient_id for t, v in p.sent if t.endswith("alarms")]
    assert stats.chunks == 4 * 10 and stats.alarms == 2
    assert sorted(alarms) == sorted([streams[0].patient_id, streams[2].patient_id])
    with pytest.raises(InvalidFieldError, match="alarm_every must be an integer >= 1, got 0"):
        replay(None, streams, speed=None, start_s=290.0, progress=False, producer=_Collect(), alarm_every=0)


def test_the_replay_producer_linger_is_checked_and_passed_to_the_client(kafka_broker):
    """``holmes replay --linger-ms``: how long the producer waits to fill a record batch (the embedded broker's cost is
    per batch); a value outside 0..1000 ms is a typed error naming the field."""
    from streams.replay import make_producer

    settings = kafka_broker.settings
    for bad in (-1, 5000, 2.5):
        with pytest.raises(InvalidFieldError) as e:
            make_producer(settings, linger_ms=bad)
        assert e.value.field == "linger_ms" and e.value.value == bad
    for linger, want in ((None, 20), (2, 2)):
        p = make_producer(settings, linger_ms=linger)
        try:
            assert p.config["linger_ms"] == want
        finally:
            p.close()
