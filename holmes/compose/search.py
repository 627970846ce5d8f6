"""Ensemble search under a latency budget: exhaustive, greedy by accuracy, greedy by latency, random, and
HOLMES's surrogate-guided genetic search.

Every search takes an ``Evaluator`` (OOF AUROC of subsets, counting true evaluations) and ``latency_fn``
(bool [K, M] -> predicted latency ms [K] at the load), and returns the feasible subset (latency <= budget)
with the highest OOF AUROC it found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from models.errors import InvalidFieldError

from .scoring import Evaluator

LatencyFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class SearchResult:
    method: str
    mask: np.ndarray  # bool [M]; all False when nothing fits the budget
    auroc: float
    latency_ms: float
    n_evaluated: int
    search_s: float

    @property
    def found(self) -> bool:
        return bool(self.mask.any())


def _result(method, ev: Evaluator, masks, aucs, lats, budget_ms, n0, t0) -> SearchResult:
    masks = np.atleast_2d(masks)
    ok = (lats <= budget_ms) & masks.any(1)
    if not ok.any():
        return SearchResult(method, np.zeros(ev.table.n_members, bool), float("nan"), float("nan"), ev.n_evaluated - n0, time.perf_counter() - t0)
    # best AUROC; among equals the faster one
    order = np.lexsort((lats[ok], -aucs[ok]))
    i = np.flatnonzero(ok)[order[0]]
    return SearchResult(method, masks[i].copy(), float(aucs[i]), float(lats[i]), ev.n_evaluated - n0, time.perf_counter() - t0)


def _bits(ints: np.ndarray, m: int) -> np.ndarray:
    return ((ints[:, None] >> np.arange(m, dtype=np.int64)[None, :]) & 1).astype(bool)


def exhaustive(ev: Evaluator, latency_fn: LatencyFn, budget_ms: float, max_members: int = 20, chunk: int = 1 << 15) -> SearchResult:
    """Every non-empty subset (2^M - 1); refused above ``max_members`` members."""
    m = ev.table.n_members
    if m > max_members:
        raise InvalidFieldError("zoo size", f"must be <= {max_members} members for exhaustive search", m)
    t0, n0 = time.perf_counter(), ev.n_evaluated
    best = None
    for start in range(1, 1 << m, chunk):
        masks = _bits(np.arange(start, min(start + chunk, 1 << m), dtype=np.int64), m)
        lats = latency_fn(masks)
        ok = lats <= budget_ms
        if not ok.any():
            continue
        masks, lats = masks[ok], lats[ok]
        r = _result("exhaustive", ev, masks, ev.auroc(masks), lats, budget_ms, n0, t0)
        if best is None or r.auroc > best.auroc or (r.auroc == best.auroc and r.latency_ms < best.latency_ms):
            best = r
    if best is None:
        return _result("exhaustive", ev, np.zeros((1, m), bool), np.array([np.nan]), np.array([np.inf]), budget_ms, n0, t0)
    best.n_evaluated, best.search_s = ev.n_evaluated - n0, time.perf_counter() - t0
    return best


def _prefixes(order: np.ndarray, m: int, latency_fn: LatencyFn, budget_ms: float) -> np.ndarray:
    """Add members in ``order``, skipping any that would break the budget; every accepted prefix."""
    cur = np.zeros(m, bool)
    out = []
    for i in order:
        trial = cur.copy()
        trial[i] = True
        if latency_fn(trial[None])[0] <= budget_ms:
            cur = trial
            out.append(cur.copy())
    return np.array(out) if out else np.zeros((1, m), bool)


def greedy_accuracy(ev: Evaluator, latency_fn: LatencyFn, budget_ms: float) -> SearchResult:
    """Members by single-model AUROC, best first, added while the budget holds; the best prefix wins."""
    t0, n0 = time.perf_counter(), ev.n_evaluated
    masks = _prefixes(np.argsort(-ev.single_auroc, kind="stable"), ev.table.n_members, latency_fn, budget_ms)
    return _result("greedy_accuracy", ev, masks, ev.auroc(masks), latency_fn(masks), budget_ms, n0, t0)


def greedy_latency(ev: Evaluator, latency_fn: LatencyFn, budget_ms: float) -> SearchResult:
    """Members by their own latency, fastest first, added while the budget holds; the best prefix wins."""
    t0, n0 = time.perf_counter(), ev.n_evaluated
    m = ev.table.n_members
    single = latency_fn(np.eye(m, dtype=bool))
    masks = _prefixes(np.argsort(single, kind="stable"), m, latency_fn, budget_ms)
    return _result("greedy_latency", ev, masks, ev.auroc(masks), latency_fn(masks), budget_ms, n0, t0)


def random_masks(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """``n`` random non-empty subsets, sizes uniform in 1..m."""
    sizes = rng.integers(1, m + 1, size=n)
    keys = rng.random((n, m))
    kth = np.sort(keys, axis=1)[np.arange(n), sizes - 1]
    return keys <= kth[:, None]


def random_search(ev: Evaluator, latency_fn: LatencyFn, budget_ms: float, n: int = 2000, seed: int = 0) -> SearchResult:
    """Best of ``n`` random subsets that fit the budget."""
    t0, n0 = time.perf_counter(), ev.n_evaluated
    masks = random_masks(np.random.default_rng(seed), n, ev.table.n_members)
    lats = latency_fn(masks)
    masks, lats = masks[lats <= budget_ms], lats[lats <= budget_ms]
    if len(masks) == 0:
        return _result("random", ev, np.zeros((1, ev.table.n_members), bool), np.array([np.nan]), np.array([np.inf]), budget_ms, n0, t0)
    return _result("random", ev, masks, ev.auroc(masks), lats, budget_ms, n0, t0)
