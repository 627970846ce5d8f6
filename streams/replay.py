"""Replay WFDB records into Kafka as live patient streams: 1 s chunks keyed by patient, the alarm at its time.

Each record is one patient (``--beds N`` makes N patients out of the records, cycling through them, with
distinct ids and phases staggered across one chunk interval so the load is smooth). Chunk ``k`` holds record
samples ``[k, k + 1)`` s and is sent when its last sample "happens": at ``start + (k + 1 - start_s) / speed``
plus the patient's phase; ``capture_unix_s`` in the message is that instant, so the consumer measures latency
from sample time. With ``speed=None`` everything is sent as fast as possible (capture = send time).

The channels sent are the record's own signal names for every canonical slot it has, in the record's order,
so a consumer mapping names to slots with ``models.data.assign_slots`` rebuilds exactly ``record.signals``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from models.data import ALARM_S, Record
from models.errors import InvalidFieldError

from .broker import KafkaSettings, Topics
from .schemas import AlarmEvent, WaveformChunk, encode_alarm, encode_chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientStream:
    patient_id: str
    record: Record
    names: tuple[str, ...]  # channel names sent
    rows: tuple[int, ...]  # slot index of each channel in record.signals
    phase_s: float  # extra wall-clock delay of this patient's chunks (staggering)

    def chunk(self, seq: int, chunk_n: int, capture_unix_s: float) -> WaveformChunk:
        fs = self.record.fs_hz
        samples = self.record.signals[list(self.rows), seq * chunk_n : (seq + 1) * chunk_n]
        return WaveformChunk(self.patient_id, seq, seq * chunk_n / fs, float(fs), self.names, samples, capture_unix_s)


def record_channels(record: Record) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(names, slot rows) of the record's slotted channels, in the record's own signal order."""
    pairs = [(record.sig_names.index(n), n, i) for i, n in enumerate(record.slot_names) if n is not None]
    pairs.sort()
    return tuple(n for _, n, _ in pairs), tuple(i for _, _, i in pairs)


def build_streams(records: list[Record], beds: int | None = None, chunk_s: float = 1.0) -> list[PatientStream]:
    """One stream per record, or ``beds`` streams cycling through the records with distinct ids."""
    if not records:
        raise InvalidFieldError("records", "must hold at least one loaded record", 0)
    n = len(records) if beds is None else beds
    if n < 1:
        raise InvalidFieldError("beds", "must be >= 1", beds)
    out = []
    for i in range(n):
        r = records[i % len(records)]
        names, rows = record_channels(r)
        pid = r.name if beds is None else f"bed{i:05d}-{r.name}"
        out.append(PatientStream(pid, r, names, rows, phase_s=chunk_s * i / n))
    return out


@dataclass
class ReplayStats:
    chunks: int = 0
    alarms: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    max_behind_s: float = 0.0  # worst lag of a send behind its schedule (real-time replays)

    @property
    def messages_per_s(self) -> float:
        return (self.chunks + self.alarms) / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict:
        return {"chunks": self.chunks, "alarms": self.alarms, "bytes": self.bytes, "elapsed_s": round(self.elapsed_s, 3),
                "messages_per_s": round(self.messages_per_s, 1), "mb_per_s": round(self.mb_per_s, 3),
                "max_behind_s": round(self.max_behind_s, 3)}


# How long the replay's producer waits to fill a record batch, in real time and as fast as possible alike. The embedded
# broker's CPU goes per record batch more than per byte (``bench/broker_batches.py``: at 1,000 chunks/s, 2 ms batches cost
# it ~2-4x the CPU of 20 ms ones), so 20 ms: at most 20 ms more from sample to score, against a 1 s deadline
# (bench/results/serve_beds_linger*_2000.json).
LINGER_MS = 20


def make_producer(settings: KafkaSettings, linger_ms: int | None = None):
    """The replay's producer; ``linger_ms`` None: ``LINGER_MS``."""
    from kafka import KafkaProducer

    linger_ms = LINGER_MS if linger_ms is None else linger_ms
    if not (isinstance(linger_ms, int) and 0 <= linger_ms <= 1000):
        raise InvalidFieldError("linger_ms", "must be an integer number of ms in 0..1000", linger_ms)
    return KafkaProducer(**settings.client_kwargs(), linger_ms=linger_ms, batch_size=512 * 1024,
                         max_request_size=4 * 1024 * 1024)


# Chunks due within this many seconds of each other are sent together (never early, at most this late): one sleep,
# producer wake-up and produce request per group instead of per patient at high bed counts (the replay shares the
# machine with what it feeds in bench/serve_beds.py).
SEND_GROUP_S = 0.01


def replay(settings: KafkaSettings, streams: list[PatientStream], speed: float | None = 1.0, start_s: float = 0.0,
           end_s: float | None = None, chunk_s: float = 1.0, alarm_s: float = ALARM_S, progress: bool = True,
           producer=None, stop=None, topics: Topics | None = None, stagger_s: float = 0.0, alarm_every: int = 1,
           linger_ms: int | None = None) -> ReplayStats:
    """Send every stream from ``start_s`` to ``end_s`` (record seconds) at ``speed`` x real time (None: max).

    ``stagger_s``: patient i of n starts ``i / n * stagger_s`` seconds (whole chunks) after the first, so the records'
    alarms arrive spread over that span as on a ward, not all in the same second; the replay lasts that much longer.
    ``alarm_every``: only patient 0, k, 2k, ... raise their record's alarm (k = ``alarm_every``), the others stream
    their waveforms alone: a ward's alarm rate at any bed count (every bed alarms at once in no real ICU).
    ``stop``: optional callable polled between chunk steps; returning True ends the replay early.
    ``linger_ms``: how long the producer waits to fill a batch (``make_producer``).
    """
    if speed is not None and not speed > 0:
        raise InvalidFieldError("speed", "must be > 0 (or None for as fast as possible)", speed)
    if not (np.isfinite(stagger_s) and stagger_s >= 0):
        raise InvalidFieldError("stagger_s", "must be a finite number of seconds >= 0", stagger_s)
    if not (isinstance(alarm_every, int) and alarm_every >= 1):
        raise InvalidFieldError("alarm_every", "must be an integer >= 1", alarm_every)
    fs = streams[0].record.fs_hz
    chunk_n = int(round(chunk_s * fs))
    if chunk_n < 1 or abs(chunk_n - chunk_s * fs) > 1e-9:
        raise InvalidFieldError("chunk_s", f"must be a whole number of samples at {fs} Hz", chunk_s)
    if start_s < 0 or abs(round(start_s / chunk_s) * chunk_s - start_s) > 1e-9:
        raise InvalidFieldError("start_s", f"must be >= 0 and a multiple of chunk_s={chunk_s}", start_s)
    n_rec = min(s.record.n_samples for s in streams)
    last = n_rec // chunk_n if end_s is None else min(n_rec // chunk_n, int(round(end_s / chunk_s)))
    first = int(round(start_s / chunk_s))
    if last <= first:
        raise InvalidFieldError("end_s", f"must be after start_s={start_s} and inside the records", end_s)
    topics = topics or Topics()
    own = producer is None
    producer = producer or make_producer(settings, linger_ms)
    stats = ReplayStats()
    alarm_seq = int(round(alarm_s / chunk_s)) - 1  # the chunk whose last sample is at the alarm time
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=(last - first) * len(streams), unit="chunk", desc="replay", smoothing=0.05)
    offsets = [int(round(stagger_s / chunk_s * i / len(streams))) for i in range(len(streams))]  # start delay in chunks
    t_start = time.time() + (0.05 if speed else 0.0)
    try:
        for step in range(last - first + max(offsets)):
            if stop is not None and stop():
                break
            step_t = t_start + (step + 1) * chunk_s / speed if speed else 0.0
            for i, (s, off) in enumerate(zip(streams, offsets)):
                seq = first + step - off
                if not first <= seq < last:
                    continue
                if speed:
                    due = step_t + s.phase_s / speed
                    wait = due - time.time()
                    if wait > 0:  # sleep past the due by SEND_GROUP_S: the patients due meanwhile go in the same batch
                        time.sleep(wait + SEND_GROUP_S)
                    else:
                        stats.max_behind_s = max(stats.max_behind_s, -wait)
                    capture = due  # stamped with its due time: a chunk sent up to SEND_GROUP_S late counts that in e2e
                else:
                    capture = time.time()
                value = encode_chunk(s.chunk(seq, chunk_n, capture))
                producer.send(topics.waveforms, key=s.patient_id.encode(), value=value)
                stats.chunks += 1
                stats.bytes += len(value)
                if seq == alarm_seq and i % alarm_every == 0:
                    ev = encode_alarm(AlarmEvent(s.patient_id, alarm_s, s.record.alarm_type, capture))
                    producer.send(topics.alarms, key=s.patient_id.encode(), value=ev)
                    stats.alarms += 1
                    stats.bytes += len(ev)
            if bar is not None:
                bar.update(len(streams))
        producer.flush()
    finally:
        if bar is not None:
            bar.close()
        if own:
            producer.close()
    stats.elapsed_s = time.time() - t_start
    return stats


def chunk_array(stream: PatientStream, seq: int, chunk_n: int) -> np.ndarray:
    """The samples chunk ``seq`` of a stream carries (float32 [n_channels, chunk_n]); for tests."""
    return stream.record.signals[list(stream.rows), seq * chunk_n : (seq + 1) * chunk_n]
