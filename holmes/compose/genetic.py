"""HOLMES's surrogate-guided genetic search over ensembles (subsets of the zoo) under a latency budget.

Each round:
1. fit a surrogate regressor (random forest on the membership bits) to every subset truly scored so far;
2. propose many candidates: random subsets, mutations (flip one or two members) of the best subsets and
   uniform crossovers of two of them; infeasible ones (predicted latency over the budget) are repaired by
   dropping their slowest members;
3. score the candidates with the surrogate and truly evaluate (OOF AUROC) only the top few plus a few random
   ones (exploration).
The population is warm-started with the greedy baselines and every feasible single member. Latency is not
learned: the latency model predicts it directly for any subset (microseconds), so only accuracy needs a
surrogate. The search stops after ``rounds`` rounds or ``patience`` rounds without improvement.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from .scoring import Evaluator
from .search import LatencyFn, SearchResult, _result, greedy_accuracy, greedy_latency, random_masks


def _keys(masks: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in np.packbits(masks, axis=1)]


def _repair(masks: np.ndarray, single_ms: np.ndarray, latency_fn: LatencyFn, budget_ms: float) -> np.ndarray:
    """Drop the slowest member of each infeasible subset until it fits (or is empty)."""
    masks = masks.copy()
    for _ in range(masks.shape[1]):
        lat = latency_fn(masks)
        bad = (lat > budget_ms) & masks.any(1)
        if not bad.any():
            break
        rows = np.flatnonzero(bad)
        slowest = np.where(masks[rows], single_ms[None, :], -np.inf).argmax(1)
        masks[rows, slowest] = False
    return masks[masks.any(1)]


def genetic(
    ev: Evaluator,
    latency_fn: LatencyFn,
    budget_ms: float,
    rounds: int = 12,
    n_candidates: int = 600,
    n_true: int = 24,
    n_parents: int = 16,
    patience: int = 4,
    seed: int = 0,
) -> SearchResult:
    t0, n0 = time.perf_counter(), ev.n_evaluated
    rng = np.random.default_rng(seed)
    m = ev.table.n_members
    single_ms = latency_fn(np.eye(m, dtype=bool))
    seeds = [greedy_accuracy(ev, latency_fn, budget_ms).mask, greedy_latency(ev, latency_fn, budget_ms).mask]
    init = np.vstack([np.array(seeds), np.eye(m, dtype=bool), random_masks(rng, 4 * n_true, m)])
    init = _repair(init, single_ms, latency_fn, budget_ms)
    if len(init) == 0:
        return _result("genetic", ev, np.zeros((1, m), bool), np.array([np.nan]), np.array([np.inf]), budget_ms, n0, t0)
    _, first = np.unique(np.packbits(init, axis=1), axis=0, return_index=True)
    X = init[np.sort(first)]
    f = ev.auroc(X)
    seen = set(_keys(X))
    best, stale = f.max(), 0
    for _ in range(rounds):
        model = RandomForestRegressor(n_estimators=40, min_samples_leaf=2, max_features=0.5, random_state=int(rng.integers(1 << 31)), n_jobs=1)
        model.fit(X.astype(np.float32), f)
        parents = X[np.argsort(-f)[:n_parents]]
        k = n_candidates // 3
        pa = parents[rng.integers(len(parents), size=k)]
        flips = rng.random((k, m)) < (1.5 / m)
        mutants = pa ^ flips
        a, b = parents[rng.integers(len(parents), size=k)], parents[rng.integers(len(parents), size=k)]
        cross = np.where(rng.random((k, m)) < 0.5, a, b)
        cand = _repair(np.vstack([mutants, cross, random_masks(rng, n_candidates - 2 * k, m)]), single_ms, latency_fn, budget_ms)
        if len(cand) == 0:
            break
        _, first = np.unique(np.packbits(cand, axis=1), axis=0, return_index=True)
        cand = cand[np.sort(first)]
        fresh = np.array([key not in seen for key in _keys(cand)])
        cand = cand[fresh]
        if len(cand) == 0:
            stale += 1
            if stale >= patience:
                break
            continue
        pred = model.predict(cand.astype(np.float32))
        top = np.argsort(-pred)[: n_true]
        rest = np.setdiff1d(np.arange(len(cand)), top)
        explore = rng.choice(rest, size=min(len(rest), max(2, n_true // 6)), replace=False) if len(rest) else np.array([], int)
        chosen = cand[np.concatenate([top, explore]).astype(int)]
        fc = ev.auroc(chosen)
        X, f = np.vstack([X, chosen]), np.concatenate([f, fc])
        seen.update(_keys(chosen))
        if fc.max() > best + 1e-12:
            best, stale = fc.max(), 0
        else:
            stale += 1
            if stale >= patience:
                break
    return _result("genetic", ev, X, f, latency_fn(X), budget_ms, n0, t0)
