"""A small but real Member for stream tests: logistic regression on per-slot window statistics, fitted on
the alarm windows of real records. It exercises the whole scoring path without depending on the zoo."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from models.data import ALARM_TYPES, alarm_window


def _stats(windows: np.ndarray, masks: np.ndarray, alarm_types) -> np.ndarray:
    w = windows.astype(np.float64)
    finite = np.isfinite(w)
    nan_frac = 1.0 - finite.mean(axis=2)
    filled = np.where(finite, w, 0.0)
    n = np.maximum(finite.sum(axis=2), 1)
    mean = filled.sum(axis=2) / n
    std = np.sqrt(np.maximum((np.where(finite, w - mean[..., None], 0.0) ** 2).sum(axis=2) / n, 0.0))
    diff = np.abs(np.diff(filled, axis=2)).mean(axis=2)
    onehot = np.array([[a == t for t in ALARM_TYPES] for a in alarm_types], dtype=np.float64)
    return np.concatenate([nan_frac, np.log1p(std), np.log1p(diff), masks.astype(np.float64), onehot], axis=1)


class StatsMember:
    name = "stats-logreg"
    kind = "features"

    def fit(self, records) -> "StatsMember":
        w = np.stack([alarm_window(r) for r in records])
        m = np.stack([r.mask for r in records])
        y = np.array([r.label for r in records])
        self.model_ = LogisticRegression(C=0.5, max_iter=2000).fit(_stats(w, m, [r.alarm_type for r in records]), y)
        self.threshold_ = 0.4
        return self

    def predict_proba(self, windows, masks, alarm_types) -> np.ndarray:
        # row by row (no BLAS matrix product), so a window's probability never depends on its batch-mates
        z = (_stats(windows, masks, alarm_types) * self.model_.coef_[0]).sum(axis=1) + self.model_.intercept_[0]
        return 1.0 / (1.0 + np.exp(-z))
