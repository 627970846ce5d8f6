"""Calibrated cascade probabilities: one map per deciding rung, fitted on the cascade's nested out-of-fold outputs.

A cascade window ends at one rung (its last IDK-free decision), and the probability it publishes is that rung's:
P(true alarm) at stage 1, P(true ventricular arrhythmia) at stage 2. Each rung's probabilities are mapped to
P(true alarm) by a ``models.calibration`` map (method chosen by CV) fitted on the windows that ended there in
nested CV. The maps are strictly increasing and the verdict is the cascade's own, so calibration never changes
a verdict. A rung that decided fewer than ``MIN_WINDOWS`` windows, or only one class, publishes as it is.
"""

from __future__ import annotations

import numpy as np

from models.calibration import Calibrator, fit_on_oof

MIN_WINDOWS = 20


def deciding_rungs(paths) -> np.ndarray:
    """The "stage/rung" name each window ended at (its last step)."""
    return np.array([p[-1][0] if p else "" for p in paths], dtype=object)


def fit_rung_maps(probability, paths, y, folds) -> dict[str, dict]:
    """{rung: map dict} from nested cascade outputs (probability and path per record) and labels."""
    rung = deciding_rungs(paths)
    p, y, folds = np.asarray(probability, dtype=np.float64), np.asarray(y), np.asarray(folds)
    out = {}
    for name in sorted(set(rung.tolist()) - {""}):
        m = rung == name
        if m.sum() >= MIN_WINDOWS and 0 < y[m].sum() < m.sum():
            out[name] = fit_on_oof(p[m], y[m], folds[m]).to_dict()
    return out


def publish(maps: dict[str, Calibrator], probability, paths) -> np.ndarray:
    """Each window's probability through its deciding rung's map (unchanged where the rung has none)."""
    p = np.asarray(probability, dtype=np.float64).copy()
    rung = deciding_rungs(paths)
    for name, cal in maps.items():
        m = rung == name
        if m.any():
            p[m] = cal.transform(p[m])
    return p


def nested_published(probability, paths, y, folds) -> np.ndarray:
    """Calibrated outputs where fold k's maps were fitted on the other folds only (for an honest ECE)."""
    p = np.asarray(probability, dtype=np.float64)
    folds = np.asarray(folds)
    out = p.copy()
    for k in np.unique(folds):
        test = folds == k
        maps = fit_rung_maps(p[~test], [q for q, t in zip(paths, test) if not t], np.asarray(y)[~test], folds[~test])
        out[test] = publish({n: Calibrator.from_dict(d) for n, d in maps.items()}, p[test], [q for q, t in zip(paths, test) if t])
    return out
