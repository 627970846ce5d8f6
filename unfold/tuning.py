"""Gate tuning for one stage: a grid search over the rungs' (ICK0, ICK1) cut-offs under a cost budget.

Like UnfoldML's Algorithm 1: every combination of cut-offs on a grid (step ``grid_step``) is scored on
out-of-fold probabilities; the most accurate combination (challenge score of the final verdicts, the
windows outside this stage counted as they stand) whose mean marginal cost per window fits the stage's
budget wins, ties to the cheaper. The last rung is forced at its own decision threshold (the challenge-
optimal cut-off on this stage's windows). Cut-offs are bounded (ICK0 <= ``max_ick0``, ICK1 >= ``min_ick1``)
so that a cheap rung cannot claim confidence from a handful of training windows at the extremes.
"""

from __future__ import annotations

import itertools

import numpy as np

from models.metrics import FN_COST, best_threshold

from .gates import ICK1, IDK, Gate


def gate_grid(grid_step: float, max_ick0: float, min_ick1: float) -> list[tuple[float, float]]:
    vals = np.round(np.arange(0.0, 1.0 + 1e-9, grid_step), 6)
    return [(float(lo), float(hi)) for lo in vals for hi in vals if lo <= max_ick0 + 1e-9 and hi >= min_ick1 - 1e-9 and lo <= hi]


def _score(pos: np.ndarray, y: np.ndarray, fixed: tuple[int, int, int, int]) -> np.ndarray:
    """Challenge score of verdict rows ``pos`` [K, n] against ``y`` [n], plus fixed (tp, tn, fp, fn)."""
    tp = (pos & y).sum(-1) + fixed[0]
    tn = (~pos & ~y).sum(-1) + fixed[1]
    fp = (pos & ~y).sum(-1) + fixed[2]
    fn = (~pos & y).sum(-1) + fixed[3]
    den = tp + tn + fp + FN_COST * fn
    return np.where(den > 0, 100.0 * (tp + tn) / np.maximum(den, 1e-12), 0.0)


def tune_stage(P, marg: np.ndarray, y, fixed_pos, fixed_y, budget_ms, grid_step: float, max_ick0: float, min_ick1: float):
    """(gates for the stage's rungs, report). ``P``: R arrays [n]; ``marg`` [R, n]: ms each rung adds."""
    y = np.asarray(y, dtype=bool)
    fp_, fy = np.asarray(fixed_pos, dtype=bool), np.asarray(fixed_y, dtype=bool)
    fixed = (int((fp_ & fy).sum()), int((~fp_ & ~fy).sum()), int((fp_ & ~fy).sum()), int((~fp_ & fy).sum()))
    R, n = len(P), len(y)
    t_last = best_threshold(y, P[-1]) if n and 0 < y.sum() < n else 0.5
    t_last = float(np.clip(t_last, 0.0, 1.0))
    last_pos = P[-1] >= t_last
    if R == 1 or n == 0:
        gates = [Gate(0.0, 1.0)] * (R - 1) + [Gate.final(t_last)]
        pos = last_pos[None]
        cost = marg.sum(0) if R == 1 else marg[0]
        return gates, {"score": float(_score(pos, y, fixed)[0]) if n else None, "mean_ms": float(np.mean(cost)) if n else 0.0,
                       "fits_budget": True, "n_combinations": 1, "threshold_last": t_last}
    pairs = gate_grid(grid_step, max_ick0, min_ick1)
    lo = np.array([p[0] for p in pairs])[:, None]
    hi = np.array([p[1] for p in pairs])[:, None]
    D = []
    for r in range(R - 1):
        d = np.full((len(pairs), n), IDK, dtype=np.int8)
        d[P[r][None, :] >= hi] = ICK1
        d[P[r][None, :] <= lo] = 0
        D.append(d)
    best = None  # (score, -cost, combo)
    n_comb = 0
    for head in itertools.product(range(len(pairs)), repeat=R - 2):
        und = np.ones(n, dtype=bool)
        pos = np.zeros(n, dtype=bool)
        cost = np.zeros(n)
        for r, k in enumerate(head):
            cost += und * marg[r]
            pos |= und & (D[r][k] == ICK1)
            und &= D[r][k] == IDK
        cost = cost + und * marg[R - 2]
        dl = D[R - 2]
        und_k = und[None] & (dl == IDK)
        pos_k = pos[None] | (und[None] & (dl == ICK1)) | (und_k & last_pos[None])
        cost_k = cost[None] + und_k * marg[R - 1][None]
        mean_ms = cost_k.mean(1)
        sc = _score(pos_k, y[None], fixed)
        n_comb += len(pairs)
        ok = np.ones(len(pairs), dtype=bool) if budget_ms is None else mean_ms <= budget_ms + 1e-9
        key = np.where(ok, sc, -1e9)
        j = int(np.lexsort((mean_ms, -key))[0])
        cand = (bool(ok[j]), float(key[j]) if ok[j] else -float(mean_ms[j]), -float(mean_ms[j]), head + (j,), float(sc[j]), float(mean_ms[j]))
        if best is None or cand[:3] > best[:3]:
            best = cand
    fits, _, _, combo, score, mean_ms = best
    gates = [Gate(*pairs[k]) for k in combo] + [Gate.final(t_last)]
    return gates, {"score": score, "mean_ms": mean_ms, "fits_budget": fits, "n_combinations": n_comb, "threshold_last": t_last}
