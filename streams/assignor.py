"""The consumer group's partition assignor: co-partitioned and sticky.

A patient's waveforms and alarms share a partition number, so one consumer must own the same numbers on both topics
(kafka-python's default, the range assignor, does that: it deals each topic's partitions in the same order). But the
range assignor deals them by sorted member id, and a consumer that joins (a restarted one: a new member id) can sort
before the one that stayed: the survivor then gives up every partition it had and takes the others, so every bed of
the service restarts its per-patient state at once (seen in a failover run: ``partitions_released`` 8 on the survivor).

``CoPartitionedSticky`` deals partition numbers instead, the same numbers on every subscribed topic, and each member
keeps the numbers it had (it says which in its join metadata) up to its fair share: only the partitions that must move
do. Eager protocol, as the range assignor.
"""

from __future__ import annotations

import json
import logging

from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

log = logging.getLogger(__name__)


def deal(numbers: list[int], owned: dict[str, list[int]]) -> dict[str, list[int]]:
    """Partition numbers per member (members in ``owned``: each one's numbers before, possibly none): every number to
    one member, shares differing by at most one, each member keeping what it owned up to its share (a number two
    members claim stays with the first in member-id order); the members that kept the most get the larger shares."""
    members = sorted(owned)
    if not members:
        return {}
    base, extra = divmod(len(numbers), len(members))
    valid, taken = set(numbers), set()
    kept: dict[str, list[int]] = {}
    for m in members:
        mine = [n for n in sorted(set(owned[m])) if n in valid and n not in taken][: base + (1 if extra else 0)]
        kept[m] = mine
        taken.update(mine)
    big = sorted(members, key=lambda m: -len(kept[m]))[:extra]  # who gets base + 1
    for m in members:
        share = base + (m in big)
        for n in kept[m][share:]:
            taken.discard(n)
        kept[m] = kept[m][:share]
    free = [n for n in numbers if n not in taken]
    for m in members:
        share = base + (m in big)
        while len(kept[m]) < share:
            kept[m].append(free.pop(0))
    return {m: sorted(v) for m, v in kept.items()}


class CoPartitionedSticky(AbstractPartitionAssignor):
    """Deals partition numbers (the same on every topic) and keeps each member's numbers where it can (``deal``)."""

    name = "holmes-copartitioned-sticky"
    version = 0

    def __init__(self):
        self.owned: list[int] = []

    def assign(self, cluster, members):
        topics = sorted({t for m in members for t in m.metadata.topics})
        by_topic = {t: set(cluster.partitions_for_topic(t) or ()) for t in topics}
        numbers = sorted(set().union(*by_topic.values())) if by_topic else []
        owned = {}
        for m in members:
            try:
                owned[m.member_id] = [int(n) for n in json.loads(m.metadata.user_data or b"[]")]
            except (ValueError, TypeError):
                owned[m.member_id] = []
        dealt = deal(numbers, owned)
        out = {}
        for m in members:
            mine = dealt.get(m.member_id, [])
            parts = [(t, [n for n in mine if n in by_topic[t]]) for t in topics if t in m.metadata.topics]
            out[m.member_id] = ConsumerProtocolAssignment(self.version, parts, b"")
        log.info("assignment: %s", {m: len(v) for m, v in dealt.items()})
        return out

    def metadata(self, topics):
        return ConsumerProtocolSubscription(self.version, list(topics), json.dumps(self.owned).encode())

    def on_assignment(self, assignment, generation):
        self.owned = sorted({tp.partition for tp in assignment.partitions()})
