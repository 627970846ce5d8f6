"""Probabilities of the fitted feature models without scikit-learn's per-call checks, same values.

Each ``predict_proba`` of a scikit-learn step validates its input (dtype, finiteness, feature names, estimator tags)
and a soft vote, a pipeline and the per-alarm-type heads of ``models.typed_heads`` stack several such calls: a
features-typed call is 6 pipelines of 2-3 steps. On a stream tick's few rows those checks are most of the cost
(the verdict bag's 10 typed models: ~70 ms for 10 alarm windows of all five types, of which the arithmetic is a few ms).

``fast_proba(estimator, X)`` checks ``X`` once (2-D, the fitted column count, no infinity; NaN only where an imputer
comes first, as scikit-learn rules) and then does each step's arithmetic itself, in scikit-learn's order, so the values
are bit-identical (``tests/foundation/test_feature_models.py`` and ``test_typed_heads.py`` check them against
scikit-learn on real feature rows). Input other than a non-empty C-ordered float64 2-D array, or with NaN where no
imputer comes first, goes to scikit-learn's own call (its dtype and memory-order rules, and its errors, then apply).
A plan is rebuilt when the estimator's fitted arrays are no longer the ones it was built from (a refit in place):

- ``SimpleImputer`` (dense, NaN as missing): each NaN replaced by its column's statistic, then the missing indicator's
  columns (the fitted ``features_``) appended as 0/1;
- ``StandardScaler``: minus ``mean_``, divided by ``scale_``;
- ``LogisticRegression`` (two classes): ``expit(X @ coef_.T + intercept_)``;
- ``ExtraTreesClassifier`` / ``RandomForestClassifier``: ``models.fast_forest``'s compiled walk on float32 rows;
- ``VotingClassifier`` (soft): ``np.average`` of its members' probabilities with its weights;
- ``Pipeline``: its steps in order; ``TypedHeads``: its own ``predict_proba`` with this function for its parts.

Anything else (e.g. gradient-boosted trees) goes to its own ``predict_proba`` (inside ``fast_forests``), so every
estimator gives its values here; only the time differs.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

_PLANS: dict[int, tuple] = {}  # id(estimator) -> (estimator, fingerprint, plan): the estimator is held so its id is not reused
_LOCK = threading.Lock()


def _imputer(step):
    from sklearn.impute import SimpleImputer

    if type(step) is not SimpleImputer or not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
        return None
    stats = np.asarray(step.statistics_, dtype=np.float64)
    if not step.keep_empty_features and np.isnan(stats).any():  # scikit-learn would drop those columns
        return None
    ind = getattr(step, "indicator_", None) if step.add_indicator else None
    if step.add_indicator and (ind is None or isinstance(ind.features_, str)):
        return None
    cols = None if ind is None else np.asarray(ind.features_, dtype=np.int64)

    def run(X):
        miss = np.isnan(X)
        out = np.where(miss, stats, X) if miss.any() else X.copy()
        return out if cols is None else np.hstack((out, miss[:, cols]))

    return run


def _scaler(step):
    from sklearn.preprocessing import StandardScaler

    if type(step) is not StandardScaler:
        return None
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def run(X):
        X = X.copy()
        if mean is not None:
            X -= mean
        if scale is not None:
            X /= scale
        return X

    return run


def _logreg(est):
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    if type(est) is not LogisticRegression or len(est.classes_) != 2:
        return None
    coef_t, icpt = est.coef_.T, est.intercept_

    def run(X):
        p = (X @ coef_t + icpt).reshape(-1)
        expit(p, out=p)
        return np.stack([1 - p, p], axis=1)

    return run


def _forest(est):
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    from .fast_forest import _flat, _kernel

    if type(est) not in (ExtraTreesClassifier, RandomForestClassifier) or est.n_jobs not in (None, 1):
        return None
    flat = _flat(est)
    if flat is None:  # pragma: no cover (numba missing)
        return None
    n = len(est.estimators_)

    def run(X):
        out = np.zeros((X.shape[0], 2), dtype=np.float64)
        _kernel()(np.ascontiguousarray(X, dtype=np.float32), *flat, out)
        out /= n
        return out

    return run


def _vote(est):
    from sklearn.ensemble import VotingClassifier

    if type(est) is not VotingClassifier or est.voting != "soft" or getattr(est, "flatten_transform", True) is not True:
        return None
    parts = [_plan(sub) for sub in est.estimators_]
    if any(p is None for p in parts):
        return None
    weights = est._weights_not_none

    def run(X):
        return np.average(np.asarray([p(X) for p in parts]), axis=0, weights=weights)

    return run


def _pipeline(est):
    from sklearn.pipeline import Pipeline

    if type(est) is not Pipeline:
        return None
    steps = [s for _, s in est.steps if s not in (None, "passthrough")]
    *transforms, final = steps
    runs = [_imputer(s) or _scaler(s) for s in transforms] + [_plan(final)]
    if any(r is None for r in runs):
        return None

    def run(X):
        for r in runs:
            X = r(X)
        return X

    return run


def _plan(est):
    """A function X -> predict_proba(X) doing the arithmetic alone, or None for an estimator it does not know."""
    for make in (_pipeline, _vote, _logreg, _forest):
        run = make(est)
        if run is not None:
            return run
    return None


_FITTED = ("steps", "estimators_", "statistics_", "indicator_", "mean_", "scale_", "coef_", "intercept_", "classes_")


def _fingerprint(est) -> tuple:
    """The identities of the fitted objects a plan reads (a refit in place or a replaced attribute changes one; the plan
    holds the old ones, so their ids are not reused while it lives)."""
    out = []
    for name in _FITTED:
        v = getattr(est, name, None)
        if v is None:
            continue
        out.append(id(v))
        if name == "steps":
            out.extend(x for _, step in v for x in _fingerprint(step))
        elif name == "estimators_" and type(est).__name__ == "VotingClassifier":
            out.extend(x for sub in v for x in _fingerprint(sub))
    return tuple(out)


def _entry(est):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    hit = _PLANS.get(id(est))
    fp = _fingerprint(est)
    if hit is not None and hit[0] is est and hit[1] == fp:
        return hit[2]
    run = _plan(est)
    if run is not None:
        first = est.steps[0][1] if isinstance(est, Pipeline) else None
        n_in = getattr(est, "n_features_in_", None)
        if n_in is None:  # a soft vote of pipelines: its first member's
            n_in = getattr(est.estimators_[0], "n_features_in_", None) if hasattr(est, "estimators_") else None
        nan_ok = isinstance(first, SimpleImputer) or all(
            isinstance(sub, Pipeline) and isinstance(sub.steps[0][1], SimpleImputer) for sub in getattr(est, "estimators_", [None]))
        run = (run, n_in, nan_ok)
    with _LOCK:
        _PLANS[id(est)] = (est, fp, run)
    return run


def _plain(X, n_in, nan_ok: bool) -> bool:
    """Whether ``X`` is what a plan computes exactly as scikit-learn does: a non-empty C-ordered float64 2-D array of the
    fitted width, NaN only where an imputer comes first (anything else goes to scikit-learn). Infinity is refused as
    scikit-learn refuses it."""
    if not (isinstance(X, np.ndarray) and X.dtype == np.float64 and X.ndim == 2 and X.flags.c_contiguous and len(X)):
        return False
    if n_in is not None and X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features, but the model is expecting {n_in} features as input")
    if not np.isfinite(X).all():
        if np.isinf(X).any():
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        return nan_ok
    return True


def fast_proba(estimator, X) -> np.ndarray:
    """``estimator.predict_proba(X)``, the same values; the fitted steps' arithmetic alone where ``_plan`` knows the
    estimator (``TypedHeads`` included: its parts go through here), scikit-learn's own call otherwise."""
    from .fast_forest import fast_forests

    if hasattr(estimator, "sub_estimators") and hasattr(estimator, "heads_"):  # models.typed_heads.TypedHeads
        return estimator.predict_proba(X, proba=fast_proba)
    entry = _entry(estimator)
    if entry is None or not _plain(X, entry[1], entry[2]):
        with warnings.catch_warnings(), fast_forests(estimator):
            warnings.simplefilter("ignore", RuntimeWarning)
            return estimator.predict_proba(X)
    return entry[0](X)
