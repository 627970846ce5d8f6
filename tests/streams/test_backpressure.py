"""Backpressure (``ConsumerConfig.max_pending``): a consumer that falls behind polls no more records than its backlog of
windows waiting to be scored has room for, and none while it is full, so the backlog stays in the broker, not in its
memory; every window is still scored once."""

from __future__ import annotations

import pytest

from models.errors import InvalidFieldError
from streams import ConsumerConfig, MemberScorer, StreamConsumer, Topics, WindowConfig, build_streams, ensure_topics, replay
from streams.testing import dedup_last, read_scores, unique_group

START_S = 270.0


def test_a_consumer_behind_pauses_fetching_and_loses_nothing(kafka_broker, stream_records, member):
    topics = Topics.with_prefix("bp")
    ensure_topics(kafka_broker.settings, topics)
    streams = build_streams(stream_records)
    replay(kafka_broker.settings, streams, speed=None, start_s=START_S, progress=False, topics=topics)  # all there at once
    end_max = min(s.record.n_samples // 250 for s in streams)
    expected = {(s.patient_id, float(e)) for s in streams for e in range(int(START_S) + 16, end_max + 1)}
    assert len(expected) >= 60

    # small polls, small batches, a tiny scoring budget per step: windows are cut faster than they are scored
    cfg = ConsumerConfig(group_id=unique_group("bp"), verdict_deadline_ms=3_600_000, max_pending=8, max_batch=2,
                         max_poll_records=10, tick_budget_s=1e-6)
    consumer = StreamConsumer(kafka_broker.settings, MemberScorer(member), WindowConfig(window_s=16.0, hop_s=1.0), cfg, topics=topics)
    metrics = consumer.run(timeout_s=90, until=lambda c: c.metrics.counters["windows_scored"] >= len(expected)
                           and c.metrics.counters["verdicts"] >= len(streams))
    c = metrics["counters"]
    # an alarm polled after its window was scored as routine gets that window scored again, as its verdict
    assert len(expected) <= c["windows_scored"] <= len(expected) + len(streams) and c["verdicts"] == len(streams)
    assert c.get("dead_letters", 0) == 0 and c.get("lost_windows", 0) == 0
    assert c["polls_skipped_backlog_full"] >= 1
    assert metrics["max_pending"] == 8  # the backlog reached the bound and never passed it
    latest = dedup_last(read_scores(kafka_broker.settings, topics.risk, min_messages=len(expected)))
    assert set(latest) == expected and sum(s.verdict is not None for s in latest.values()) == len(streams)


@pytest.mark.parametrize("bad", [0, -5])
def test_max_pending_must_be_positive(bad):
    with pytest.raises(InvalidFieldError) as e:
        ConsumerConfig(max_pending=bad)
    assert e.value.field == "max_pending" and e.value.value == bad
