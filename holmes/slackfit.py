"""SlackFit: which subnet, and how many queued requests, for the most urgent request's slack (SuperServe).

Offline, every (subnet, batch size) pair of the supernet's front gets its profiled service time, and the pairs
are bucketed by it (``bucket_edges_ms``). Online, for the queue's most urgent request with slack ``s`` and
``q`` windows queued: the pairs whose batch fits the queue (the largest profiled batch <= q) are considered,
among the pairs that finish within ``s`` those of the highest latency bucket are taken, and of them the
largest batch, then the most accurate subnet. A short queue therefore gets the most accurate subnet that fits; a long queue (a burst) gets
bigger batches of smaller subnets in the same time, so it drains instead of missing every deadline.

The baselines the benchmark compares with are the same object with ``mode="largest"`` or ``"smallest"``: a
fixed subnet, batches as large as the queue allows.

>>> p = SlackFitPolicy({"s": {1: 1.0, 8: 3.0}, "l": {1: 4.0, 8: 12.0}}, {"s": 60.0, "l": 70.0})
>>> p.choose(slack_ms=50.0, queued=1), p.choose(slack_ms=50.0, queued=8), p.choose(slack_ms=3.5, queued=8)
(('l', 1), ('l', 8), ('s', 8))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from models.errors import InvalidFieldError

MODES = ("slackfit", "largest", "smallest")


@dataclass(frozen=True)
class Pair:
    subnet: str
    batch: int
    latency_ms: float
    accuracy: float


def front(latency_ms: Mapping[str, Mapping[int, float]], accuracy: Mapping[str, float], batch: int = 1) -> list[str]:
    """Subnets on the accuracy / latency front at ``batch`` (no other subnet is both faster and more accurate)."""
    names = sorted(latency_ms, key=lambda n: (latency_ms[n][batch], -accuracy[n]))
    out, best = [], -math.inf
    for n in names:
        if accuracy[n] > best:
            out.append(n)
            best = accuracy[n]
    return out


class SlackFitPolicy:
    """``latency_ms``: {subnet: {batch: ms}} (profiled service time); ``accuracy``: {subnet: nested-CV score}."""

    def __init__(self, latency_ms: Mapping[str, Mapping[int, float]], accuracy: Mapping[str, float], mode: str = "slackfit",
                 n_buckets: int = 6, pareto: bool = True):
        if int(n_buckets) != n_buckets or n_buckets < 1:
            raise InvalidFieldError("n_buckets", "must be an integer >= 1", n_buckets)
        if mode not in MODES:
            raise InvalidFieldError("mode", "must be a SlackFit mode", mode, list(MODES))
        if not latency_ms:
            raise InvalidFieldError("latency_ms", "must profile at least one subnet", latency_ms)
        missing = [n for n in latency_ms if n not in accuracy]
        if missing:
            raise InvalidFieldError("accuracy", "must give every profiled subnet's accuracy", missing)
        self.mode = mode
        lat = {n: {int(b): float(v) for b, v in d.items()} for n, d in latency_ms.items()}
        self.batches = sorted(set.intersection(*(set(d) for d in lat.values())))
        if not self.batches:
            raise InvalidFieldError("latency_ms", "must profile a batch size common to every subnet", latency_ms)
        names = front(lat, accuracy, self.batches[0]) if pareto else list(lat)
        self.subnets = sorted(names, key=lambda n: accuracy[n])  # least accurate first
        self.pairs = [Pair(n, b, lat[n][b], float(accuracy[n])) for n in self.subnets for b in self.batches]
        bad = [(p.subnet, p.batch, p.latency_ms) for p in self.pairs if not p.latency_ms > 0]
        if bad:
            raise InvalidFieldError("latency_ms", "must be > 0 for every (subnet, batch)", bad[:3])
        lo = min(p.latency_ms for p in self.pairs)
        hi = max(p.latency_ms for p in self.pairs)
        ratio = (hi / lo) ** (1.0 / n_buckets) if hi > lo else 2.0
        self.bucket_edges_ms = [lo * ratio ** (i + 1) for i in range(n_buckets)]
        self.bucket_edges_ms[-1] = hi

    def bucket(self, latency_ms: float) -> int:
        for i, edge in enumerate(self.bucket_edges_ms):
            if latency_ms <= edge + 1e-12:
                return i
        return len(self.bucket_edges_ms) - 1

    def _batch_for(self, queued: int) -> int:
        fits = [b for b in self.batches if b <= max(1, queued)]
        return fits[-1] if fits else self.batches[0]

    def choose(self, slack_ms: float, queued: int) -> tuple[str, int]:
        """(subnet, batch size in windows) for the most urgent request's slack with ``queued`` windows waiting."""
        b_max = self._batch_for(queued)
        if self.mode != "slackfit":
            return (self.subnets[-1] if self.mode == "largest" else self.subnets[0]), b_max
        pairs = [p for p in self.pairs if p.batch <= b_max]
        fitting = [p for p in pairs if p.latency_ms <= slack_ms]
        if not fitting:  # nothing finishes in time: the fastest way to drain, the largest batch of the smallest
            small = [p for p in pairs if p.subnet == self.subnets[0]]
            return self.subnets[0], max(p.batch for p in small)
        top = max(self.bucket(p.latency_ms) for p in fitting)
        in_bucket = [p for p in fitting if self.bucket(p.latency_ms) == top]
        best = max(in_bucket, key=lambda p: (p.batch, p.accuracy))
        return best.subnet, best.batch
