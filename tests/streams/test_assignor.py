"""``streams.assignor``: partition numbers dealt the same on both topics, fair shares, each consumer keeping what it
had; the assignor's join metadata carries what it owns. A real two-consumer group on the embedded broker is covered by
tests/demo/test_holmes_serve.py (two consumer processes split the beds by partition and score each window once)."""

from __future__ import annotations

from types import SimpleNamespace

from kafka import TopicPartition
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

from streams.assignor import CoPartitionedSticky, deal

N = list(range(16))


def test_a_survivor_keeps_its_partitions_whatever_the_newcomers_member_id():
    for newcomer in ("a-first", "z-last"):
        out = deal(N, {"m-survivor": list(range(8, 16)), newcomer: []})
        assert out["m-survivor"] == list(range(8, 16)) and out[newcomer] == list(range(8))


def test_shares_differ_by_at_most_one_and_every_number_has_one_owner():
    for owned in ({"a": N}, {"a": N, "b": [], "c": []}, {"a": [0, 1], "b": [2, 3], "c": [4], "d": []},
                  {"a": [0, 1, 2], "b": [2, 3]}, {"a": [99, 3], "b": []}):
        for numbers in (N, list(range(5))):
            out = deal(numbers, owned)
            got = sorted(n for v in out.values() for n in v)
            sizes = [len(v) for v in out.values()]
            assert got == numbers and max(sizes) - min(sizes) <= 1, (owned, out)
    assert deal(N, {"a": [0, 1, 2], "b": [2, 3]})["b"][0] == 3  # a number two members claim stays with the first
    assert deal(list(range(5)), {"a": [0, 1], "b": [2, 3], "c": [4], "d": []}) == {"a": [0, 1], "b": [2], "c": [4], "d": [3]}
    assert deal(N, {}) == {}


def test_the_assignor_deals_both_topics_alike_and_says_what_it_owns_when_it_joins():
    topics = {"icu.waveforms": set(N), "icu.alarms": set(N)}
    cluster = SimpleNamespace(partitions_for_topic=lambda t: topics.get(t))
    old, new = CoPartitionedSticky(), CoPartitionedSticky()
    old.on_assignment(ConsumerProtocolAssignment(0, [("icu.alarms", list(range(8, 16))), ("icu.waveforms", list(range(8, 16)))], b""), 1)
    members = [SimpleNamespace(member_id=mid, metadata=ConsumerProtocolSubscription(0, sorted(topics), a.metadata(topics).user_data))
               for mid, a in (("z-old", old), ("a-new", new))]
    out = old.assign(cluster, members)
    for mid, want in (("z-old", list(range(8, 16))), ("a-new", list(range(8)))):
        parts = out[mid].partitions()
        assert sorted(tp.partition for tp in parts if tp.topic == "icu.waveforms") == want
        assert sorted(tp.partition for tp in parts if tp.topic == "icu.alarms") == want
        assert all(isinstance(tp, TopicPartition) for tp in parts)
    bad = SimpleNamespace(member_id="b", metadata=ConsumerProtocolSubscription(0, sorted(topics), b"not json"))
    assert len(old.assign(cluster, [bad])["b"].partitions()) == 32  # unreadable metadata: owns nothing before
