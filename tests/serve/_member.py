"""A small real member for the service tests: logistic regression on per-slot statistics (NaN fraction,
standard deviation, mean absolute first difference) plus the alarm type, fitted on real alarm windows."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

from models.data import ALARM_TYPES, N_SLOTS, alarm_window


def stats(windows: np.ndarray, masks: np.ndarray, alarm_types, slots) -> np.ndarray:
    w = windows[:, list(slots)]
    present = masks[:, list(slots)].astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nan_frac = np.isnan(w).mean(2)
        std = np.nan_to_num(np.nanstd(w, axis=2))
        mad = np.nan_to_num(np.nanmean(np.abs(np.diff(w, axis=2)), axis=2))
    onehot = np.array([[a == t for t in ALARM_TYPES] for a in alarm_types], dtype=float)
    return np.concatenate([nan_frac, np.log1p(std), np.log1p(mad), present, onehot], axis=1)


class StatsMember:
    kind = "features"

    def __init__(self, name: str, slots=tuple(range(N_SLOTS)), C: float = 1.0):
        self.name = name
        self.slots = tuple(slots)
        self.C = C

    def fit(self, records, window_s: float = 16.0):
        w = np.stack([alarm_window(r, window_s) for r in records])
        m = np.stack([r.mask for r in records])
        a = [r.alarm_type for r in records]
        y = np.array([r.label for r in records])
        self.model_ = LogisticRegression(C=self.C, max_iter=2000).fit(stats(w, m, a, self.slots), y)
        return self

    def predict_proba(self, windows, masks, alarm_types):
        return self.model_.predict_proba(stats(windows, masks, alarm_types, self.slots))[:, 1]
