"""Offset bookkeeping of the stream consumer: what was consumed per partition, what may be committed, the
commit itself, and the group listener that hands revoked partitions to the consumer's loop.

A partition's committable offset is held back to the oldest data a window not yet scored still needs (the
windower's buffers, and the windows cut but not scored yet), so a consumer killed at any point re-reads and
re-scores; de-duplicating ``icu.risk`` by (patient, window end) then leaves exactly one score per window.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class OffsetBook:
    def __init__(self):
        self.consumed: dict[tuple[str, int], int] = {}  # next offset to read, per (topic, partition)
        self.committed: dict[tuple[str, int], int] = {}
        self.last_commit = 0.0

    def mark(self, topic: str, partition: int, offset: int) -> None:
        self.consumed[(topic, partition)] = offset + 1

    def forget(self, keys) -> None:
        """Partitions another consumer owns now: it re-reads them from the last commit."""
        for k in keys:
            self.consumed.pop(k, None)
            self.committed.pop(k, None)

    def due(self, interval_s: float) -> bool:
        return time.monotonic() - self.last_commit >= interval_s

    def committable(self, assigned: set, windower, pending, topics) -> dict[tuple[str, int], int]:
        """Per assigned partition, the offset below which every message is fully handled."""
        offsets = windower.committable({k: v for k, v in self.consumed.items() if k in assigned}, topics.waveforms, topics.alarms)
        for it in pending:  # windows cut but not scored yet: their first chunk must be re-read after a crash
            tp = (topics.waveforms, it.partition)
            if tp in offsets and it.first_offset >= 0:
                offsets[tp] = min(offsets[tp], it.first_offset)
            if it.alarm_offset >= 0 and (topics.alarms, it.alarm_partition) in offsets:
                tpa = (topics.alarms, it.alarm_partition)
                offsets[tpa] = min(offsets[tpa], it.alarm_offset)
        return offsets

    def commit(self, consumer, windower, pending, topics, metrics, force: bool = False, only: set | None = None) -> dict:
        """Commit what changed since the last commit (everything with ``force``); {} when nothing was committed."""
        from kafka import TopicPartition
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        self.last_commit = time.monotonic()
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        offsets = self.committable(assigned, windower, pending, topics)
        todo = {k: v for k, v in offsets.items() if (force or self.committed.get(k) != v) and (only is None or k in only)}
        if not todo:
            return {}
        try:
            consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in todo.items()})
        except (CommitFailedError, KafkaError) as e:  # left the group (e.g. a rebalance): the new owner re-reads
            log.warning("offset commit failed, will re-read from the last commit: %s", e)
            metrics.inc("commit_failures")
            return {}
        self.committed.update(todo)
        metrics.inc("commits")
        return todo


def rebalance_listener(owner):
    """The consumer group listener of a ``StreamConsumer``: revoked partitions are handed to its loop."""
    from kafka import ConsumerRebalanceListener

    class _Rebalance(_RebalanceHandlers, ConsumerRebalanceListener):
        pass

    return _Rebalance(owner)


class _RebalanceHandlers:
    """Before partitions move to another consumer: publish, commit, forget their patients."""

    def __init__(self, owner):
        self.owner = owner

    def on_partitions_revoked(self, revoked) -> None:
        # Runs on kafka-python's IO thread: no blocking calls here. The loop forgets these partitions'
        # patients once the rebalance has assigned the new partitions (the eager protocol revokes every
        # partition before the group re-forms, and the consumer's assignment still lists them until then);
        # their uncommitted windows are re-read and re-scored by the new owner.
        with self.owner._revoked_lock:
            self.owner._revoked.extend((tp.topic, tp.partition) for tp in revoked)
            self.owner._rebalancing = True

    def on_partitions_assigned(self, assigned) -> None:
        with self.owner._revoked_lock:
            self.owner._rebalancing = False
        log.info("assigned %d partitions", len(assigned))
