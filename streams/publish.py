"""Publishing of the stream consumer: one ``RiskScore`` per window to ``icu.risk`` (and dead letters).

Every window that entered is published: scored, or marked degraded with its reasons (a data gap, a scorer that
failed, a verdict later than its alarm's deadline or answered below the floor). The risk alarm (hysteresis) of
each patient is updated here, in window order.
"""

from __future__ import annotations

import logging
import time

from .hysteresis import RiskHysteresis
from .metrics import StreamMetrics
from .schemas import RiskScore, encode_risk

log = logging.getLogger(__name__)
MAX_DEADLETTER_COPY_BYTES = 1024 * 1024


class RiskPublisher:
    def __init__(self, producer, topics, window_s: float, default_alarm_type: str, metrics: StreamMetrics,
                 risk_alarms: RiskHysteresis):
        self.producer = producer
        self.topics = topics
        self.window_s = window_s
        self.default_alarm_type = default_alarm_type
        self.metrics = metrics
        self.risk_alarms = risk_alarms

    def scores(self, items, scores, score_ms: float, scorer_name: str, verdict_due_unix_s=None) -> float:
        """Publish ``scores`` of ``items``; ``verdict_due_unix_s[i]``: when an alarm window's verdict is due (a
        verdict published later is marked ``verdict_late``). Returns the publish time."""
        now = time.time()
        for i, (it, s) in enumerate(zip(items, scores)):
            reasons = list(it.degraded_reasons) + ([s.degraded_reason] if s.degraded_reason else [])
            verdict = None if it.alarm is None or s.positive is None else bool(s.positive)
            if it.alarm is not None and verdict_due_unix_s is not None and now > verdict_due_unix_s[i]:
                reasons.append("verdict_late")
                self.metrics.inc("verdicts_late")
            risk = RiskScore(
                patient_id=it.patient_id, window_end_s=it.end_s, window_s=self.window_s, stage=s.stage,
                probability=s.probability, positive=s.positive, alarm_type=it.alarm_type, models=list(s.models),
                scorer=scorer_name, verdict=verdict, alarm_time_s=None if it.alarm is None else it.alarm.time_s,
                degraded=bool(reasons), degraded_reasons=reasons,
                latency_ms={"wait_ms": round((it.ready_unix_s - it.sample_unix_s) * 1e3, 3),
                            "score_ms": round(score_ms, 3), "to_send_ms": round((now - it.sample_unix_s) * 1e3, 3)},
                sample_unix_s=it.sample_unix_s, published_unix_s=now,
                risk_alarm=self.risk_alarms.update(it.patient_id, it.end_s, s.probability),
            )
            self.producer.send(self.topics.risk, key=it.patient_id.encode(), value=encode_risk(risk))
            if reasons:
                self.metrics.inc("degraded")
            if it.alarm is not None:
                self.metrics.inc("verdicts")
                if reasons:
                    self.metrics.inc("verdicts_degraded")
        self.metrics.inc("scores_published", len(items))
        return now

    def lost(self, lw, scorer_name: str) -> None:
        """A window that cannot be scored from data: published degraded, with the reason."""
        now = time.time()
        ev = lw.alarm
        risk = RiskScore(lw.patient_id, lw.end_s, self.window_s, 1, None, None,
                         ev.alarm_type if ev else self.default_alarm_type, [], scorer_name, None,
                         ev.time_s if ev else None, True, [lw.reason], {}, lw.sample_unix_s, now)
        self.producer.send(self.topics.risk, key=lw.patient_id.encode(), value=encode_risk(risk))
        self.metrics.inc("scores_published")
        self.metrics.inc("degraded")
        self.metrics.inc("lost_windows")
        if ev is not None:
            self.metrics.inc("verdicts")
            self.metrics.inc("verdicts_degraded")

    def dead_letter(self, topic: str, partition: int, m, field: str, reason: str) -> None:
        value = m.value if isinstance(m.value, (bytes, bytearray)) else b""
        headers = [("reason", reason[:2000].encode()), ("field", field.encode()), ("topic", topic.encode()),
                   ("partition", str(partition).encode()), ("offset", str(m.offset).encode()),
                   ("original_size", str(len(value)).encode())]
        if len(value) > MAX_DEADLETTER_COPY_BYTES:
            value = value[:MAX_DEADLETTER_COPY_BYTES]
            headers.append(("truncated", b"1"))
        self.producer.send(self.topics.deadletter, key=m.key, value=bytes(value), headers=headers)
        self.metrics.dead_letter(field)
        log.debug("dead letter %s[%d]@%d: %s", topic, partition, m.offset, reason)
