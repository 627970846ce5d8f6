"""Test support: a session-scoped embedded broker and helpers to read topics back.

Use from any test package's conftest.py:

    from streams.testing import broker_fixture
    kafka_broker = broker_fixture()          # a pytest fixture (scope="session") yielding an EmbeddedBroker
"""

from __future__ import annotations

import time
import uuid

from .broker import EmbeddedBroker, KafkaSettings
from .schemas import RiskScore, decode_risk


def broker_fixture(scope: str = "session"):
    import pytest

    @pytest.fixture(scope=scope)
    def kafka_broker():
        broker = EmbeddedBroker().start()
        try:
            yield broker
        finally:
            broker.stop()

    return kafka_broker


def read_topic(settings: KafkaSettings, topic: str, min_messages: int = 0, timeout_s: float = 30.0, idle_s: float = 1.0) -> list:
    """Every message of ``topic`` from the beginning (no consumer group); waits for ``min_messages``,
    then until nothing new came for ``idle_s``."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(**settings.client_kwargs(), group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50)
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out: list = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            got = c.poll(timeout_ms=100, max_records=10000)
            n = sum(len(v) for v in got.values())
            for msgs in got.values():
                out.extend(msgs)
            if n:
                last_new = time.monotonic()
            elif len(out) >= min_messages and time.monotonic() - last_new >= idle_s:
                break
        return out
    finally:
        c.close()


def read_scores(settings: KafkaSettings, topic: str = "icu.risk", **kw) -> list[RiskScore]:
    return [decode_risk(m.value) for m in read_topic(settings, topic, **kw)]


def dedup_last(scores: list[RiskScore]) -> dict[tuple[str, float], RiskScore]:
    """(patient, window end) -> the last score published for it (log-compaction semantics)."""
    out: dict[tuple[str, float], RiskScore] = {}
    for s in scores:
        out[s.key] = s
    return out


def unique_group(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
