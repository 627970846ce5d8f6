"""Scoring ensembles from out-of-fold predictions: AUROC for many subsets at once, nested challenge score.

An ensemble is a set of members; its probability is the mean of the members' probabilities (the "mean" rule
of ``models.ensemble``, the one the service and the cascade combine with). Subsets are
boolean masks over the zoo's members (``bool [K, M]``), so thousands are scored with one matrix product and
one row-wise rank.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from models.ensemble import subset_weights
from models.metrics import auroc, best_threshold, challenge_score

from .table import ZooTable


def ensemble_prob(table: ZooTable, mask: np.ndarray, rule: str = "mean") -> np.ndarray:
    """OOF probability of each subset under ``rule`` (``models.ensemble``): bool [K, M] -> float [K, N] (or [M] -> [N])."""
    out = subset_weights(mask, table.kinds, rule) @ table.oof
    return out[0] if np.ndim(mask) == 1 else out


def batch_auroc(prob: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUROC of every row of ``prob`` [K, N] against labels ``y`` [N] (ties get average ranks).

    >>> import numpy as np
    >>> batch_auroc(np.array([[0.1, 0.9, 0.8, 0.2], [0.9, 0.1, 0.2, 0.8]]), np.array([0, 1, 1, 0])).tolist()
    [1.0, 0.0]
    """
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    ranks = rankdata(np.atleast_2d(prob), axis=1)
    return (ranks[:, y].sum(1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)


class Evaluator:
    """Scores subsets of one zoo by OOF AUROC, counting every subset it really scores (``n_evaluated``)."""

    def __init__(self, table: ZooTable, chunk: int = 4096):
        self.table = table
        self.chunk = chunk
        self.n_evaluated = 0
        self.single_auroc = batch_auroc(table.oof, table.y)

    def auroc(self, masks: np.ndarray) -> np.ndarray:
        masks = np.atleast_2d(np.asarray(masks, dtype=bool))
        out = np.empty(len(masks))
        for s in range(0, len(masks), self.chunk):
            part = masks[s : s + self.chunk]
            out[s : s + len(part)] = batch_auroc(np.atleast_2d(ensemble_prob(self.table, part)), self.table.y)
        self.n_evaluated += len(masks)
        return out


def nested_score(table: ZooTable, mask: np.ndarray) -> dict:
    """Challenge score of one ensemble with each fold's threshold chosen on the other folds (never on itself),
    its AUROC, and the threshold chosen on all folds (the one a service uses)."""
    p = ensemble_prob(table, np.asarray(mask, dtype=bool))
    y, folds = table.y, table.folds
    pred = np.zeros(len(y), dtype=bool)
    for k in np.unique(folds):
        test = folds == k
        t = best_threshold(y[~test], p[~test])
        pred[test] = p[test] >= t
    return {
        "auroc": auroc(y, p),
        "score": challenge_score(y, pred),
        "threshold": best_threshold(y, p),
    }
