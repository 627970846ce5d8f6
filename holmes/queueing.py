"""Latency of an ensemble at a load: service time per request batch plus queueing.

Service time. The service fans a request out to one deployment per member; members run concurrently on
``n_workers`` cores (one torch thread each), so a request with member service times s_i(b) at batch b takes

    S(b) = overhead_ms + per_member_ms * k + max(max_i s_i(b), sum_i s_i(b) / n_workers)

where ``overhead_ms`` is the fixed cost of a request through the service (handle call, ingress, aggregation)
and ``per_member_ms`` the cost of one more fan-out call. s_i(b) comes from each member's profile (median
latency at batch 1, 8, 64, interpolated) or, better, from service times measured on the running deployment.

Queueing. ``beds`` patients each produce ``rate_hz`` windows per second; the stream consumer sends them in
requests of at most ``max_request_windows`` windows.
- ``periodic`` arrivals (the consumer's tick): the requests of one tick arrive together and are served one
  after another (D/D/1 with batch arrivals): request j of a tick waits j * S.
- ``poisson`` arrivals (bursty clients): M/D/1, mean wait Wq = rho S / (2 (1 - rho)); the waiting-time tail
  is taken as exponential with P(W > 0) = rho (the heavy-traffic approximation), so the q-quantile of the
  wait is (Wq / rho) ln(rho / (1 - q)) when rho > 1 - q, else 0.
The p99 latency adds ``tail_factor`` (p99 / p50 of the service time itself, measured) on top of S.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from models.errors import InvalidFieldError

ARRIVALS = ("periodic", "poisson")


@dataclass(frozen=True)
class Load:
    """The offered load: ``beds`` patients scored ``rate_hz`` times per second, batched per request."""

    beds: int
    rate_hz: float = 1.0
    max_request_windows: int = 64
    arrival: str = "periodic"

    def __post_init__(self):
        if self.beds < 1:
            raise InvalidFieldError("beds", "must be >= 1", self.beds)
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise InvalidFieldError("rate_hz", "must be a finite number > 0", self.rate_hz)
        if self.max_request_windows < 1:
            raise InvalidFieldError("max_request_windows", "must be >= 1", self.max_request_windows)
        if self.arrival not in ARRIVALS:
            raise InvalidFieldError("arrival", "must be a known arrival process", self.arrival, ARRIVALS)

    @property
    def requests_per_tick(self) -> int:
        return math.ceil(self.beds / self.max_request_windows)

    @property
    def batch(self) -> float:
        """Windows per request."""
        return self.beds / self.requests_per_tick

    @property
    def request_rate_hz(self) -> float:
        return self.rate_hz * self.requests_per_tick


@dataclass(frozen=True)
class LatencyModel:
    """Service-time parameters (ms) of the running service; ``member_ms`` overrides profiles per member:
    ``{name: {batch_size: ms}}`` measured on the deployment."""

    overhead_ms: float = 12.0
    per_member_ms: float = 3.0
    n_workers: float = 2.0
    tail_factor: float = 1.3
    member_ms: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyModel":
        known = {"overhead_ms", "per_member_ms", "n_workers", "tail_factor", "member_ms"}
        unknown = set(d) - known
        if unknown:
            raise InvalidFieldError("latency model", "has unknown keys", sorted(unknown), sorted(known))
        mm = {n: {int(b): float(v) for b, v in row.items()} for n, row in d.get("member_ms", {}).items()}
        return cls(**{**{k: d[k] for k in known - {"member_ms"} if k in d}, "member_ms": mm})

    def member_service_ms(self, table, batch: float) -> np.ndarray:
        """s_i(batch) for every member of ``table`` (a ZooTable): measured on the service when known."""
        s = table.latency_at(batch)
        for i, name in enumerate(table.names):
            if self.member_ms.get(name):
                s[i] = interp_ms(self.member_ms[name], batch)
        return s

    def ensemble_service_ms(self, member_ms: np.ndarray) -> float:
        """S of one ensemble from its members' service times (ms) at the request's batch size."""
        s = np.asarray(member_ms, dtype=np.float64)
        return float(self.overhead_ms + self.per_member_ms * len(s) + max(s.max(initial=0.0), s.sum() / self.n_workers))

    def service_ms(self, table, masks: np.ndarray, batch: float) -> np.ndarray:
        """S(batch) of each subset: bool [K, M] -> float [K]."""
        m = np.atleast_2d(np.asarray(masks, dtype=bool))
        s = self.member_service_ms(table, batch)
        k = m.sum(1)
        work = m @ s
        longest = np.where(m, s[None, :], 0.0).max(1)
        return self.overhead_ms + self.per_member_ms * k + np.maximum(longest, work / self.n_workers)

    def predict(self, table, masks: np.ndarray, load: Load) -> dict:
        """Predicted latency (ms) of each subset at ``load``: {"service_ms", "rho", "p50_ms", "p99_ms"} arrays."""
        S = self.service_ms(table, masks, load.batch)
        return latency_at_load(S, load, self.tail_factor)


def interp_ms(row: dict, batch: float) -> float:
    """Service time (ms) at ``batch`` from ``{batch_size: ms}``: piecewise linear, extrapolated beyond the
    largest batch size with the last segment's slope."""
    bs = sorted(int(b) for b in row)
    v = [float(row[b] if b in row else row[str(b)]) for b in bs]
    if batch <= bs[-1] or len(bs) < 2:
        return float(np.interp(batch, bs, v))
    return v[-1] + (v[-1] - v[-2]) / (bs[-1] - bs[-2]) * (batch - bs[-1])


def latency_at_load(service_ms: np.ndarray, load: Load, tail_factor: float = 1.3) -> dict:
    """p50/p99 latency (ms) for requests of service time ``service_ms`` at ``load`` (see module docstring)."""
    S = np.asarray(service_ms, dtype=np.float64)
    rho = load.request_rate_hz * S / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if load.arrival == "periodic":
            n = load.requests_per_tick
            # request j (0..n-1) of a tick finishes at (j+1) S; quantiles over the n requests
            p50 = S * (math.floor(0.5 * (n - 1)) + 1)
            p99 = S * tail_factor + S * math.floor(0.99 * (n - 1))
        else:
            wq = rho * S / (2.0 * (1.0 - rho))
            cond = np.where(rho > 0, wq / np.maximum(rho, 1e-12), 0.0)
            w50 = np.where(rho > 0.5, cond * np.log(np.maximum(rho, 1e-12) / 0.5), 0.0)
            w99 = np.where(rho > 0.01, cond * np.log(np.maximum(rho, 1e-12) / 0.01), 0.0)
            p50 = S + w50
            p99 = S * tail_factor + w99
    p50 = np.where(rho < 1.0, p50, np.inf)
    p99 = np.where(rho < 1.0, p99, np.inf)
    return {"service_ms": S, "rho": rho, "p50_ms": np.asarray(p50, dtype=float), "p99_ms": np.asarray(p99, dtype=float)}
