"""Batch reference through the real broker: every window the consumer cuts equals the WFDB slice, bit for bit,
and every alarm verdict equals the same member's offline prediction on the record's alarm window."""

from __future__ import annotations

import numpy as np

from models.data import ALARM_S, alarm_window, window
from streams import ConsumerConfig, MemberScorer, StreamConsumer, Topics, WindowConfig, build_streams, ensure_topics, replay
from streams.testing import dedup_last, read_scores, unique_group

START_S = 260.0  # replay the last 40 s before the alarm (and what follows in 330 s records)


class RecordingScorer:
    """The real member scorer, keeping a copy of every batch it was given."""

    def __init__(self, inner):
        self.inner, self.name, self.batches = inner, inner.name, []

    def score(self, batch):
        self.batches.append(batch)
        return self.inner.score(batch)


class TestBatchReference:
    def test_windows_and_verdicts_match_the_records(self, kafka_broker, stream_records, member):
        topics = Topics.with_prefix("ref")
        ensure_topics(kafka_broker.settings, topics)
        streams = build_streams(stream_records)
        stats = replay(kafka_broker.settings, streams, speed=None, start_s=START_S, progress=False, topics=topics)
        n_s = {s.patient_id: s.record.n_samples // 250 for s in streams}
        end_max = min(n_s.values())
        expected = {(s.patient_id, float(e)) for s in streams for e in range(int(START_S) + 16, end_max + 1)}
        assert stats.chunks == len(streams) * (end_max - START_S) and stats.alarms == len(streams)

        scorer = RecordingScorer(MemberScorer(member))
        # the whole replay is in the broker before the consumer starts, so every verdict is seconds past its alarm:
        # the verdict deadline is set out of the way here (lateness is tested in test_lanes.py)
        consumer = StreamConsumer(kafka_broker.settings, scorer, WindowConfig(window_s=16.0, hop_s=1.0),
                                  ConsumerConfig(group_id=unique_group("ref"), verdict_deadline_ms=3_600_000), topics=topics)
        metrics = consumer.run(timeout_s=60, until=lambda c: c.metrics.counters["windows_scored"] >= len(expected))
        assert metrics["counters"]["windows_scored"] == len(expected)
        assert metrics["counters"].get("dead_letters", 0) == 0

        # every window cut from the stream is bit-identical to the WFDB record's slice
        by_id = {s.patient_id: s.record for s in streams}
        seen = set()
        for b in scorer.batches:
            for i, (pid, end_s) in enumerate(zip(b.patient_ids, b.window_end_s)):
                rec = by_id[pid]
                assert np.array_equal(b.windows[i], window(rec, end_s), equal_nan=True), (pid, end_s)
                assert np.array_equal(b.masks[i], rec.mask & np.isfinite(window(rec, end_s)).any(axis=1))
                seen.add((pid, float(end_s)))
        assert seen == expected

        # the scores in icu.risk: one per window, the alarm verdict equal to the offline prediction
        scores = read_scores(kafka_broker.settings, topics.risk, min_messages=len(expected))
        latest = dedup_last(scores)
        assert set(latest) == expected and len(scores) == len(expected)
        for s in streams:
            r = s.record
            got = latest[(s.patient_id, ALARM_S)]
            offline_p = member.predict_proba(alarm_window(r)[None], r.mask[None], [r.alarm_type])[0]
            assert got.alarm_time_s == ALARM_S and got.alarm_type == r.alarm_type and not got.degraded
            assert got.verdict == bool(offline_p >= member.threshold_)
            assert got.probability == offline_p
            assert got.latency_ms["score_ms"] > 0 and got.published_unix_s >= got.sample_unix_s
        assert sum(sc.verdict is not None for sc in latest.values()) == len(streams)

        # every score carries the patient's risk alarm: the hysteresis run over that patient's published risks
        from streams.hysteresis import HysteresisConfig, RiskHysteresis

        h = RiskHysteresis(HysteresisConfig())
        for (pid, end_s), sc in sorted(latest.items(), key=lambda kv: kv[0][1]):
            assert isinstance(sc.risk_alarm, bool) and sc.risk_alarm is h.update(pid, end_s, sc.probability)

        # holmes replay --offline: the same windows through the same scorer give the same scores, verdicts and alarms
        from streams.offline import OfflineConfig, score_records

        rows = score_records([s.record for s in streams], MemberScorer(member), OfflineConfig(start_s=START_S, end_s=float(end_max)))
        pid_of = {s.record.name: s.patient_id for s in streams}
        offline = {(pid_of[r["record"]], r["window_end_s"]): r for r in rows}
        assert set(offline) == expected
        for key, sc in latest.items():
            r = offline[key]
            assert r["probability"] == sc.probability and r["verdict"] == sc.verdict and r["alarm_type"] == sc.alarm_type
            assert r["risk_alarm"] is sc.risk_alarm and r["positive"] == sc.positive
