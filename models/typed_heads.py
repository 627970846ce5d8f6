"""Per-alarm-type heads: one model per alarm type, mixed with one global model, calibrated per alarm type.

The five alarm types are five different questions (is this pause real? is this wide fast rhythm real?), and
one global model answers them with one score scale, so one threshold serves them all badly. ``TypedHeads``
fits, on the design matrix of ``models.feature_models`` (features, then the alarm type one-hot in the last
``len(ALARM_TYPES)`` columns):

- a global model on every row (the base estimator, e.g. the soft vote of logistic regression and extra trees);
- a head per alarm type on that type's rows (when it has at least ``min_records`` rows and both classes);
- ``p = mix * head + (1 - mix) * global`` for each row (the global model alone where a type has no head);
- a Platt map per alarm type, fitted on out-of-fold mixed probabilities (``calib_splits`` folds of the
  training rows, stratified by type and label), so a probability means the same across types and one
  cost-optimal threshold serves them all (with calibrated probabilities that threshold is 1/(1 + 5) for every
  type). A type with too few rows or one class uses the map fitted on all rows.

``mix="auto"`` chooses each type's weight from ``MIX_GRID`` on the same inner out-of-fold rows (lowest log loss of
the Platt-mapped mix) instead of a fixed one.

Measured (``bench/typed_heads.py``, nested, record-grouped CV over 5 fold seeds, 501 development records, same
folds): features-vote 75.30 +/- 2.19, features-typed (mix 0.5) 78.56 +/- 1.43, features-typed-auto (mix chosen on
inner folds) 78.24 +/- 1.74 (+2.94 +/- 1.43 over the vote, 5/5 seeds): the 0.5 was picked after looking at outer
folds, and choosing it honestly costs 0.3 points, well inside the spread.
"""

from __future__ import annotations

import warnings

import numpy as np

from .data import ALARM_TYPES, RecordInfo, cv_folds
from .errors import InvalidFieldError

N_TYPES = len(ALARM_TYPES)
LOGIT_CLIP = 1e-4
MIX_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # mix="auto": the weights tried per alarm type on the inner out-of-fold rows


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _platt(q: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the logistic map logit(q) -> P(y=1) (scikit-learn's L2 logistic regression, C=1)."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1.0).fit(_logit(q)[:, None], y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def types_of(X: np.ndarray) -> np.ndarray:
    """Alarm type index of each design-matrix row (its one-hot block is the last ``N_TYPES`` columns)."""
    onehot = np.asarray(X)[:, -N_TYPES:]
    if not np.all((onehot == 0) | (onehot == 1)) or not np.all(onehot.sum(1) == 1):
        raise InvalidFieldError("X", f"must end with a one-hot block of the {N_TYPES} alarm types", "rows without one")
    return onehot.argmax(1)


class TypedHeads:
    """Global model + per-alarm-type heads, mixed and calibrated per type (scikit-learn classifier protocol)."""

    def __init__(self, base: str = "vote", mix: float | str = 0.5, min_records: int = 12, calib_splits: int = 5, seed: int = 0):
        if mix != "auto" and not (isinstance(mix, (int, float)) and 0.0 <= mix <= 1.0):
            raise InvalidFieldError("mix", "must be within [0, 1] or 'auto' (chosen per alarm type on inner folds)", mix)
        if base.startswith("typed"):
            raise InvalidFieldError("base", "must be a plain feature-model estimator, not a typed one", base)
        self.base, self.mix, self.min_records, self.calib_splits, self.seed = base, mix, min_records, calib_splits, seed

    # -- fitting --------------------------------------------------------------------------------------
    def _new(self):
        from .feature_models import _estimator

        return _estimator(self.base, self.seed)

    def _fit_models(self, X, y, t):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            glob = self._new().fit(X, y)
            heads = {}
            for k in range(N_TYPES):
                m = t == k
                if self._trainable(y[m]):
                    heads[k] = self._new().fit(X[m], y[m])
        return glob, heads

    def _parts(self, glob, heads, X, t, proba=None) -> tuple[np.ndarray, np.ndarray]:
        """(global probability, head probability) of each row; the head's is the global one where its type has none.
        ``proba(model, X)``: how a part's probabilities are computed (its ``predict_proba`` by default)."""
        proba = proba or (lambda m, Z: m.predict_proba(Z))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pg = proba(glob, X)[:, 1]
            ph = pg.copy()
            for k, head in heads.items():
                m = t == k
                if m.any():
                    ph[m] = proba(head, X[m])[:, 1]
        return pg, ph

    def _trainable(self, y_type: np.ndarray) -> bool:
        """Whether one alarm type's rows can have a head and a map of their own: enough rows, both classes."""
        return bool(len(y_type) >= self.min_records and 0 < y_type.sum() < len(y_type))

    def _weights(self, t: np.ndarray) -> np.ndarray:
        """Each row's head weight: its type's chosen mix (models fitted before per-type mixes carry ``mix`` alone)."""
        mixes = getattr(self, "mixes_", None) or {k: self.mix for k in range(N_TYPES)}
        return np.array([float(mixes[k]) for k in range(N_TYPES)])[t]

    def _mixed(self, glob, heads, X, t, proba=None) -> np.ndarray:
        pg, ph = self._parts(glob, heads, X, t, proba)
        w = self._weights(t)
        return w * ph + (1.0 - w) * pg

    def _calib_folds(self, t: np.ndarray, y: np.ndarray, groups) -> np.ndarray:
        """Inner fold of each row for the out-of-fold mix: rows of one group (e.g. several windows of one record) share
        a fold, so no record is on both sides of a calibration split."""
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)  # none given: each row its own group
        if groups.shape != y.shape:
            raise InvalidFieldError("groups", f"must give one group per row (shape ({len(y)},))", groups.shape)
        uniq, first, inv = np.unique(groups, return_index=True, return_inverse=True)
        mixed = (t != t[first][inv]) | (y != y[first][inv])
        if mixed.any():
            raise InvalidFieldError("groups", "must keep one alarm type and one label per group (the first group that does not)", groups[np.argmax(mixed)].item())
        infos = [RecordInfo(str(g), ALARM_TYPES[t[i]], int(y[i])) for g, i in zip(uniq, first)]
        return cv_folds(infos, self.calib_splits, seed=self.seed + 2000)[inv]

    def fit(self, X, y, groups=None) -> "TypedHeads":
        """Fit on design-matrix rows ``X`` and labels ``y``; ``groups``: optional group per row (rows of one group go to
        the same inner calibration fold)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        t = types_of(X)
        folds = self._calib_folds(t, y, groups)
        pg, ph = np.empty(len(y)), np.empty(len(y))
        for k in range(self.calib_splits):
            tr, te = folds != k, folds == k
            glob, heads = self._fit_models(X[tr], y[tr], t[tr])
            pg[te], ph[te] = self._parts(glob, heads, X[te], t[te])
        self.global_, self.heads_ = self._fit_models(X, y, t)
        ok = {k: self._trainable(y[t == k]) for k in range(N_TYPES)}
        fixed = 0.5 if self.mix == "auto" else float(self.mix)  # "auto" on a type without a head of its own: the default
        self.mixes_ = {k: self._choose_mix(pg[t == k], ph[t == k], y[t == k]) if self.mix == "auto" and ok[k] else fixed
                       for k in range(N_TYPES)}
        w = self._weights(t)
        oof = w * ph + (1.0 - w) * pg
        fallback = _platt(oof, y)
        self.maps_ = {k: _platt(oof[t == k], y[t == k]) if ok[k] else fallback for k in range(N_TYPES)}
        self.classes_ = np.array([0, 1])
        return self

    @staticmethod
    def _choose_mix(pg: np.ndarray, ph: np.ndarray, y: np.ndarray) -> float:
        """The weight of ``MIX_GRID`` whose Platt-mapped out-of-fold mix has the lowest log loss on one type's rows
        (ties: the one nearest 0.5)."""
        best = None
        for w in MIX_GRID:
            q = w * ph + (1.0 - w) * pg
            a, b = _platt(q, y)
            p = np.clip(1.0 / (1.0 + np.exp(-(a * _logit(q) + b))), 1e-9, 1 - 1e-9)
            loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
            key = (round(loss, 9), abs(w - 0.5))
            if best is None or key < best[0]:
                best = (key, w)
        return float(best[1])

    # -- inference ------------------------------------------------------------------------------------
    def sub_estimators(self) -> list:
        """The fitted global model and heads (``models.fast_forest`` walks them)."""
        return [self.global_, *self.heads_.values()] if hasattr(self, "global_") else []

    def predict_proba(self, X, proba=None) -> np.ndarray:
        """[1 - p, p] per design-matrix row; ``proba(model, X)``: how the global model's and heads' probabilities are
        computed (``models.fast_predict.fast_proba`` gives their values without scikit-learn's per-call checks)."""
        X = np.asarray(X, dtype=np.float64)
        t = types_of(X)
        z = _logit(self._mixed(self.global_, self.heads_, X, t, proba))
        a = np.array([self.maps_[k][0] for k in range(N_TYPES)])[t]
        b = np.array([self.maps_[k][1] for k in range(N_TYPES)])[t]
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        return np.column_stack([1.0 - p, p])

    def __repr__(self) -> str:
        return (f"TypedHeads(base={self.base!r}, mix={self.mix}, heads={sorted(getattr(self, 'heads_', {}))}"
                + (f", mixes={[self.mixes_[k] for k in range(N_TYPES)]})" if hasattr(self, "mixes_") else ")"))
