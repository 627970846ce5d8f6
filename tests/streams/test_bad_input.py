"""1,000+ malformed messages mixed into a replay: no crash, each one in icu.deadletter with a reason, and the
good patients' scores identical to a clean run (one patient's broken stream never touches the others)."""

from __future__ import annotations

import json
import struct

import numpy as np

from streams import (ConsumerConfig, MemberScorer, StreamConsumer, Topics, WindowConfig, build_streams, encode_alarm,
                     encode_chunk, ensure_topics)
from streams.replay import make_producer
from streams.schemas import AlarmEvent, WaveformChunk
from streams.testing import dedup_last, read_scores, read_topic, unique_group

START_S, END_S, FS = 270, 300, 250


def _bad_messages(good, rng) -> list[tuple[str, bytes, bytes]]:
    """(topic kind, key, value) of every malformed kind, 1,000+ in all, some keyed to good patients."""
    s = good[0]
    valid = encode_chunk(s.chunk(280, FS, 0.0))
    out = []
    for i in range(1100):
        kind = i % 11
        pid = s.patient_id if i % 2 else f"bad{i % 7}"
        key = pid.encode()
        samples = rng.normal(size=(3, FS)).astype(np.float32)
        chunk = WaveformChunk(pid, 5000 + i, (5000 + i) * 1.0, 250.0, ("II", "V", "ABP"), samples, 0.0)
        if kind == 0:
            v = rng.bytes(int(rng.integers(0, 300)))  # garbage
        elif kind == 1:
            v = valid[: int(rng.integers(10, len(valid) - 1))]  # truncated
        elif kind == 2:
            v = encode_chunk(chunk)[:4] + bytes([7]) + encode_chunk(chunk)[5:]  # unknown version
        elif kind == 3:
            v = encode_chunk(WaveformChunk(pid, 5000 + i, (5000 + i) * 90 / 360, 360.0, chunk.channel_names,
                                           rng.normal(size=(3, 90)).astype(np.float32), 0.0))  # wrong fs
        elif kind == 4:
            v = encode_chunk(WaveformChunk(**{**chunk.__dict__, "samples": np.full((3, FS), np.nan, np.float32)}))  # NaN only
        elif kind == 5:
            raw = encode_chunk(chunk)
            v = raw[:5] + bytes([2]) + raw[6:]  # channel count disagrees with names/payload
        elif kind == 6:
            v = encode_chunk(chunk) + b"\0" * (200 * 1024 if i % 4 else 2 * 1024 * 1024)  # huge payload
        elif kind == 7:  # channel set that contradicts the patient's stream (or only unknown channels)
            v = encode_chunk(WaveformChunk(**{**chunk.__dict__, "channel_names": ("FOO", "BAR", "BAZ")}))
        elif kind == 8:
            v = encode_chunk(chunk)
            key = b"someone-else"  # key does not match the patient id
        elif kind == 9:
            v = json.dumps({"v": 1, "patient_id": pid, "time_s": "soon", "alarm_type": "Asystole"}).encode()
            out.append(("alarms", key, v))
            continue
        else:
            raw = encode_chunk(chunk)
            v = raw[:28] + struct.pack("<d", float("inf")) + raw[36:]  # non-finite capture time
        out.append(("waveforms", key, v))
    return out


def _run(settings, topics, streams, member, bad=()):
    ensure_topics(settings, topics)
    prod = make_producer(settings)
    bad = list(bad)
    per_step = -(-len(bad) // (END_S - START_S))
    for seq in range(START_S, END_S):
        for s in streams:
            prod.send(topics.waveforms, key=s.patient_id.encode(), value=encode_chunk(s.chunk(seq, FS, 0.0)))
            if seq == END_S - 1:
                ev = AlarmEvent(s.patient_id, 300.0, s.record.alarm_type)
                prod.send(topics.alarms, key=s.patient_id.encode(), value=encode_alarm(ev))
        for kind, key, v in bad[(seq - START_S) * per_step : (seq - START_S + 1) * per_step]:
            prod.send(topics.waveforms if kind == "waveforms" else topics.alarms, key=key, value=v)
    prod.flush()
    prod.close()
    n_windows = len(streams) * (END_S - START_S - 16 + 1)
    consumer = StreamConsumer(settings, MemberScorer(member), WindowConfig(),
                              ConsumerConfig(group_id=unique_group("bad")), topics=topics)
    n_messages = len(streams) * (END_S - START_S + 1) + len(bad)
    metrics = consumer.run(timeout_s=60, until=lambda c: c.metrics.counters["windows_scored"] >= n_windows
                           and c.metrics.counters["messages"] >= n_messages)
    return metrics, dedup_last(read_scores(settings, topics.risk, min_messages=n_windows))


class TestBadInput:
    def test_malformed_messages_go_to_the_dead_letter_topic_only(self, kafka_broker, stream_records, member):
        settings = kafka_broker.settings
        streams = build_streams(stream_records[:3])
        clean_metrics, clean = _run(settings, Topics.with_prefix("clean"), streams, member)
        bad = _bad_messages(streams, np.random.default_rng(0))
        assert len(bad) >= 1000
        topics = Topics.with_prefix("dirty")
        metrics, dirty = _run(settings, topics, streams, member, bad)

        assert metrics["counters"]["dead_letters"] == len(bad)
        dead = read_topic(settings, topics.deadletter, min_messages=len(bad))
        assert len(dead) == len(bad)
        fields = set()
        for m in dead:
            h = dict(m.headers)
            assert h["reason"] and h["field"], h
            assert int(h["original_size"]) >= len(m.value)
            fields.add(h["field"].decode())
        assert {"version", "fs_hz", "samples", "message", "channel_names", "key", "time_s", "capture_unix_s"} <= fields, fields
        # original bytes are kept (truncated copies say so)
        assert any(dict(m.headers).get("truncated") == b"1" for m in dead)

        assert set(dirty) == set(clean) and len(clean) == clean_metrics["counters"]["windows_scored"]
        for k, c in clean.items():
            d = dirty[k]
            assert (d.probability, d.positive, d.verdict, d.degraded) == (c.probability, c.positive, c.verdict, c.degraded), k
