"""A rebalance under kafka-python's eager protocol revokes every partition of a consumer before the group re-forms, and
the consumer's assignment still lists them until the new one is in. The consumer forgets the patients of the partitions
it lost only once the new assignment is there: a partition given back keeps its patients, one that moved is forgotten
(before this, the forget ran while the old assignment was still listed, forgot nothing, and the moved patients' state
stayed until idle eviction). Unit test of the listener and the loop step on a stand-in for the Kafka client."""

from __future__ import annotations

import numpy as np
from kafka import TopicPartition

from streams.broker import KafkaSettings
from streams.consumer import ConsumerConfig, StreamConsumer
from streams.offsets import rebalance_listener
from streams.schemas import WaveformChunk


class _Client:  # the assignment as kafka-python reports it: the old one until the group has re-formed
    def __init__(self, tps):
        self.tps = set(tps)

    def assignment(self):
        return self.tps


def _tp(topic, p):
    return TopicPartition(topic, p)


def test_moved_partitions_are_forgotten_once_the_new_assignment_is_in():
    c = StreamConsumer(KafkaSettings("127.0.0.1:9"), scorer=None, config=ConsumerConfig())
    wf, al = c.topics.waveforms, c.topics.alarms
    for pid, part in (("kept", 0), ("moved", 1)):
        c.windower.add_chunk(WaveformChunk(pid, 0, 0.0, 250.0, ("II",), np.zeros((1, 250), np.float32), 1.0), part, 5)
        c.offsets.mark(wf, part, 5)
    old = [_tp(t, p) for t in (wf, al) for p in (0, 1)]
    c._consumer = _Client(old)
    listener = rebalance_listener(c)

    listener.on_partitions_revoked(set(old))  # eager: everything revoked, the old assignment still listed
    c._forget_revoked()
    assert set(c.windower.partition_of) == {"kept", "moved"} and c._revoked  # nothing forgotten yet, nothing dropped

    c._consumer.tps = {_tp(wf, 0), _tp(al, 0)}  # the group re-formed: partition 1 went to another consumer
    listener.on_partitions_assigned(c._consumer.tps)
    c._forget_revoked()
    assert set(c.windower.partition_of) == {"kept"} and not c._revoked
    assert (wf, 1) not in c.offsets.consumed and c.offsets.consumed[wf, 0] == 6
    assert c.metrics.counters["partitions_released"] == 2
