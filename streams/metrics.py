"""Counters and latency percentiles of a running consumer.

Latency is end to end: from the wall-clock time of a window's last sample (stamped by the producer) to the
moment its score was acknowledged by the broker. ``snapshot()`` is a plain dict (JSON-ready).

>>> m = StreamMetrics(slo_ms=1000); m.observe_latency([100.0, 200.0, 2000.0]); m.snapshot()["e2e_ms"]["slo_attainment"]
0.6667
"""

from __future__ import annotations

import os
import time
from collections import Counter

import numpy as np


class LatencyReservoir:
    """The last ``capacity`` latencies (ms), numpy-backed, so percentiles cost nothing on the hot path."""

    def __init__(self, capacity: int = 200_000):
        self._buf = np.empty(capacity, dtype=np.float64)
        self._n = 0  # total observed

    def add(self, values_ms) -> None:
        v = np.asarray(values_ms, dtype=np.float64).reshape(-1)
        cap = len(self._buf)
        if len(v) >= cap:
            self._buf[:] = v[-cap:]
        else:
            i = self._n % cap
            k = min(len(v), cap - i)
            self._buf[i : i + k] = v[:k]
            self._buf[: len(v) - k] = v[k:]
        self._n += len(v)

    def values(self) -> np.ndarray:
        return self._buf[: min(self._n, len(self._buf))]

    def summary(self, slo_ms: float | None = None) -> dict:
        v = self.values()
        if len(v) == 0:
            return {"n": 0}
        p50, p95, p99 = np.percentile(v, [50, 95, 99])
        out = {"n": int(self._n), "p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
               "max": round(float(v.max()), 2), "mean": round(float(v.mean()), 2)}
        if slo_ms is not None:
            out["slo_ms"] = slo_ms
            out["slo_attainment"] = round(float((v <= slo_ms).mean()), 4)
        return out

    def reset(self) -> None:
        self._n = 0


class StageClock:
    """CPU (this thread) and wall seconds spent per named stage of the consumer loop: where a window's cost goes.

    >>> c = StageClock()
    >>> with c("poll"):
    ...     pass
    >>> c.snapshot()["poll"]["calls"]
    1
    """

    def __init__(self):
        self.cpu_s: Counter[str] = Counter()
        self.wall_s: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def __call__(self, name: str) -> "_Stage":
        return _Stage(self, name)

    def snapshot(self) -> dict:
        return {k: {"cpu_s": round(self.cpu_s[k], 4), "wall_s": round(self.wall_s[k], 4), "calls": self.calls[k]} for k in self.calls}


class _Stage:
    __slots__ = ("clock", "name", "c0", "w0")

    def __init__(self, clock: StageClock, name: str):
        self.clock, self.name = clock, name

    def __enter__(self):
        self.c0, self.w0 = time.thread_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        k = self.clock
        k.cpu_s[self.name] += time.thread_time() - self.c0
        k.wall_s[self.name] += time.perf_counter() - self.w0
        k.calls[self.name] += 1
        return False


class StreamMetrics:
    def __init__(self, slo_ms: float = 1000.0):
        self.slo_ms = slo_ms
        self.counters: Counter[str] = Counter()
        self.dead_letter_reasons: Counter[str] = Counter()
        self.e2e_ms = LatencyReservoir()
        self.verdict_e2e_ms = LatencyReservoir(50_000)  # alarm sample time -> verdict acknowledged
        self.score_ms = LatencyReservoir(50_000)
        self.batch_sizes = LatencyReservoir(50_000)
        self.started = time.time()
        self.first_message_unix_s: float | None = None
        self.first_message_cpu_s: float | None = None  # process CPU when the first message came (startup excluded)
        self.last_scored_unix_s: float | None = None
        self.max_pending = 0  # most windows cut and waiting to be scored at once (the consumer's backlog in memory)
        self.stages = StageClock()  # consumer loop stages (main thread): poll, decode+place, cut, score, publish, flush

    def inc(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def mark_first_message(self) -> None:
        if self.first_message_unix_s is None:
            self.first_message_unix_s = time.time()
            self.first_message_cpu_s = time.process_time()

    def dead_letter(self, field: str) -> None:
        self.counters["dead_letters"] += 1
        self.dead_letter_reasons[field] += 1

    def observe_latency(self, e2e_ms) -> None:
        self.e2e_ms.add(e2e_ms)

    def observe_verdict_latency(self, e2e_ms) -> None:
        self.verdict_e2e_ms.add(e2e_ms)

    def observe_batch(self, size: int, score_ms: float) -> None:
        self.batch_sizes.add([size])
        self.score_ms.add([score_ms])

    def snapshot(self) -> dict:
        return {
            "uptime_s": round(time.time() - self.started, 2),
            "process_cpu_s": round(time.process_time(), 2),  # CPU of this process (all threads): capacity under a shared CPU
            # the same since the first message: imports, model load and group join left out
            "active_cpu_s": round(time.process_time() - self.first_message_cpu_s, 2) if self.first_message_cpu_s is not None else 0.0,
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "counters": dict(sorted(self.counters.items())),
            "dead_letters_by_field": dict(sorted(self.dead_letter_reasons.items())),
            "e2e_ms": self.e2e_ms.summary(self.slo_ms),
            "verdict_e2e_ms": self.verdict_e2e_ms.summary(self.slo_ms),
            "score_batch_ms": self.score_ms.summary(),
            "batch_size": self.batch_sizes.summary(),
            "stages": self.stages.snapshot(),
            "max_pending": self.max_pending,
            "first_message_unix_s": self.first_message_unix_s,
            "active_s": round((self.last_scored_unix_s or 0.0) - (self.first_message_unix_s or 0.0), 3)
            if self.first_message_unix_s and self.last_scored_unix_s else 0.0,
        }
