"""Gate tuning for one stage: a grid search over the rungs' (ICK0, ICK1) cut-offs under a cost budget.

Like UnfoldML's Algorithm 1: every combination of cut-offs on a grid (step ``grid_step``) is scored on
out-of-fold probabilities; the most accurate combination (challenge score of the final verdicts, the
windows outside this stage counted as they stand) whose mean marginal cost per window fits the stage's
budget wins, ties to the cheaper. The last rung is forced at its own decision threshold (the challenge-
optimal cut-off on this stage's windows). Cut-offs are bounded (ICK0 <= ``max_ick0``, ICK1 >= ``min_ick1``)
so that a cheap rung cannot claim confidence from a handful of training windows at the extremes.

Miss bound (``max_miss_rate``, None = none). A rung may answer ICK0 ("confidently low": the window stops,
negative, and the costlier rungs never see it) only through a cut-off whose ICK0 answers on the tuning data
hold at most ``max_miss_rate`` true alarms per answer: for every non-forced rung of the stage,

    true alarms among the windows that reach the rung and that it answers ICK0
    ------------------------------------------------------------------------------  <=  max_miss_rate
    windows that reach the rung and that it answers ICK0

(the false-omission rate of the rung's ICK0 answers, counted on the windows that really reach it under the
earlier rungs' gates of the same combination). The bound is a hard constraint: among the admissible
combinations the budget and then the score decide as above. Why this rate and not the share of all true
alarms a rung drops: the challenge charges a missed true alarm 5x a false alarm, so what an ICK0 answer
risks is set by how likely *that answer* is a true alarm (an answer that is a true alarm with probability q
costs 5q in expectation against (1 - q) for a false alarm; answering negative beats answering positive only
for q < 1/6). Bounding the rate per answer keeps every ICK0 answer at least as safe as the ensemble's own
negative answers when the bound is at or under the ensemble's false-omission rate (5.8-7.6 % on these records),
however many windows the rung answers. A bound on the share of all true alarms a rung drops says nothing per
answer: it would let a rung answer negative a narrow band in which one answer in six is a true alarm, as long as
the band is small. (The total count of missed true alarms is what ``bench/cascade_safe.py`` checks against the
full ensemble's, on held-out folds.)
The forced last rung (the ensemble) is not bounded: it is the reference. If no combination on the grid
meets the bound (a rung giving p = 0 to a true alarm), the least-violating one is taken and the report
says ``meets_miss_bound: False``.
"""

from __future__ import annotations

import itertools

import numpy as np

from models.metrics import FN_COST, best_threshold

from .gates import ICK0, ICK1, IDK, Gate


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


def ick0_answers(P, gates, y) -> list[dict]:
    """Per non-forced rung: windows that reach it and that it answers ICK0, the true alarms among them, and
    their rate (the quantity ``max_miss_rate`` bounds), running the gates on probabilities ``P`` in order."""
    y = np.asarray(y, dtype=bool)
    und = np.ones(len(y), dtype=bool)
    out = []
    for r, g in enumerate(gates):
        if g.forced:
            break
        d = g.decide(P[r])
        a0 = und & (d == ICK0)
        n0, m0 = int(a0.sum()), int((a0 & y).sum())
        out.append({"rung": r, "reached": int(und.sum()), "ick0": n0, "true_alarms": m0, "miss_rate": m0 / n0 if n0 else 0.0})
        und &= d == IDK
    return out


def tune_stage(P, marg: np.ndarray, y, fixed_pos, fixed_y, budget_ms, grid_step: float, max_ick0: float, min_ick1: float,
               max_miss_rate: float | None = None):
    """(gates for the stage's rungs, report). ``P``: R arrays [n]; ``marg`` [R, n]: ms each rung adds;
    ``max_miss_rate``: bound on the true-alarm rate of each non-forced rung's ICK0 answers (module docstring)."""
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
                       "fits_budget": True, "n_combinations": 1, "threshold_last": t_last, "max_miss_rate": max_miss_rate,
                       "meets_miss_bound": True, "ick0": ick0_answers(P, gates, y)}
    pairs = gate_grid(grid_step, max_ick0, min_ick1)
    lo = np.array([p[0] for p in pairs])[:, None]
    hi = np.array([p[1] for p in pairs])[:, None]
    D = []
    for r in range(R - 1):
        d = np.full((len(pairs), n), IDK, dtype=np.int8)
        d[P[r][None, :] >= hi] = ICK1
        d[P[r][None, :] <= lo] = ICK0
        D.append(d)
    bound = None if max_miss_rate is None else float(max_miss_rate)
    best = None  # (-excess, fits, score or -cost, -cost, combo, score, cost)
    n_comb = 0
    for head in itertools.product(range(len(pairs)), repeat=R - 2):
        und = np.ones(n, dtype=bool)
        pos = np.zeros(n, dtype=bool)
        cost = np.zeros(n)
        excess = 0.0  # true alarms over the bound among the ICK0 answers of the head rungs (0: admissible)
        for r, k in enumerate(head):
            cost += und * marg[r]
            if bound is not None:
                a0 = und & (D[r][k] == ICK0)
                excess = max(excess, float((a0 & y).sum()) - bound * float(a0.sum()))
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
        if bound is None:
            exc = np.zeros(len(pairs))
        else:
            a0 = und[None] & (dl == ICK0)
            exc = np.maximum(excess, (a0 & y[None]).sum(1) - bound * a0.sum(1))
            exc = np.where(exc > 1e-9, exc, 0.0)
        ok = np.ones(len(pairs), dtype=bool) if budget_ms is None else mean_ms <= budget_ms + 1e-9
        key = np.where(ok, sc, -1e9)
        j = int(np.lexsort((mean_ms, -key, exc))[0])
        cand = (-float(exc[j]), bool(ok[j]), float(key[j]) if ok[j] else -float(mean_ms[j]), -float(mean_ms[j]), head + (j,),
                float(sc[j]), float(mean_ms[j]))
        if best is None or cand[:4] > best[:4]:
            best = cand
    neg_excess, fits, _, _, combo, score, mean_ms = best
    gates = [Gate(*pairs[k]) for k in combo] + [Gate.final(t_last)]
    return gates, {"score": score, "mean_ms": mean_ms, "fits_budget": fits, "n_combinations": n_comb, "threshold_last": t_last,
                   "max_miss_rate": bound, "meets_miss_bound": neg_excess == 0.0, "ick0": ick0_answers(P, gates, y)}
