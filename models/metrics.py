"""The challenge score, AUROC, and decision thresholds chosen for the challenge's 5:1 cost.

A true alarm is the positive class. Missing one (FN) costs five times letting a false alarm through (FP):

    score = 100 * (TP + TN) / (TP + TN + FP + 5 * FN)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

FN_COST = 5.0


def confusion(y_true, y_pred) -> tuple[int, int, int, int]:
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    return int((y & p).sum()), int((~y & ~p).sum()), int((~y & p).sum()), int((y & ~p).sum())


def challenge_score(y_true, y_pred) -> float:
    """100 (TP+TN) / (TP+TN+FP+5FN).

    >>> challenge_score([1, 1, 0, 0], [1, 0, 0, 1])
    25.0
    """
    tp, tn, fp, fn = confusion(y_true, y_pred)
    den = tp + tn + fp + FN_COST * fn
    return 100.0 * (tp + tn) / den if den else float("nan")


def auroc(y_true, prob) -> float:
    """Area under the ROC curve (Mann-Whitney), NaN when one class is absent."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(prob, dtype=np.float64)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    # average ranks for ties
    i = 0
    r = np.arange(1, len(p) + 1, dtype=np.float64)
    while i < len(sp):
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        r[i : j + 1] = (i + j + 2) / 2.0
        i = j + 1
    ranks[order] = r
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def best_threshold(y_true, prob, grid: Sequence[float] | None = None) -> float:
    """The cut-off on ``prob`` that maximises the challenge score on (y_true, prob).

    Ties are broken toward the middle of the best plateau, which generalises better than its edge.
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(prob, dtype=np.float64)
    cand = np.unique(np.concatenate([p, [0.0, 1.0]])) if grid is None else np.asarray(grid, dtype=np.float64)
    # predicted positive when p >= t; evaluate every candidate vectorised
    pos = p[None, :] >= cand[:, None]
    tp = (pos & y).sum(1)
    fp = (pos & ~y).sum(1)
    fn = (~pos & y).sum(1)
    tn = (~pos & ~y).sum(1)
    den = tp + tn + fp + FN_COST * fn
    s = np.where(den > 0, (tp + tn) / np.maximum(den, 1), 0.0)
    best = np.flatnonzero(s >= s.max() - 1e-12)
    # "p >= t" is constant for t in (cand[i-1], cand[i]]: take the middle of the first best plateau
    end = best[0]
    while end + 1 < len(cand) and end + 1 in set(best.tolist()):
        end += 1
    lo = cand[best[0] - 1] if best[0] > 0 else cand[best[0]] - 1e-6
    return float((lo + cand[end]) / 2.0)


def summarize(y_true, prob, pred, alarm_types: Sequence[str] | None = None) -> dict:
    """Score, AUROC, TPR, TNR and counts, overall and (when alarm_types is given) per alarm type."""

    def one(y, p, d):
        tp, tn, fp, fn = confusion(y, d)
        return {
            "n": int(len(y)),
            "score": challenge_score(y, d),
            "auroc": auroc(y, p),
            "tpr": tp / (tp + fn) if tp + fn else float("nan"),
            "tnr": tn / (tn + fp) if tn + fp else float("nan"),
            "tp": tp,
            "tn": tn,
            "fp": fp,
            "fn": fn,
        }

    y, p, d = np.asarray(y_true), np.asarray(prob), np.asarray(pred)
    out = one(y, p, d)
    if alarm_types is not None:
        at = np.asarray(alarm_types)
        out["per_type"] = {t: one(y[at == t], p[at == t], d[at == t]) for t in sorted(set(at.tolist()))}
    return out
