"""Scikit-learn models on signal features, with the alarm type as an input and a cost-aware threshold.

``FeatureModel`` implements ``models.member.Member``: raw windows in, P(true alarm) out. ``fit`` takes
precomputed feature rows (so cross-validation extracts features once) and chooses ``threshold_`` on
inner out-of-fold predictions of its own training data only, so an outer fold never sees its threshold
chosen on itself (nested cross-validation).

>>> m = make_feature_model("features-logreg")
>>> m.kind, m.name
('features', 'features-logreg')
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from .data import ALARM_TYPES, FS_HZ, RecordInfo, cv_folds
from .errors import InvalidFieldError
from .fast_predict import fast_proba
from .features import FEATURE_NAMES, alarm_onehot, extract_batch
from .member import check_batch, check_output
from .metrics import best_threshold

POS_WEIGHT = 3.0  # class weight of a true alarm; the 5:1 cost itself is applied by the threshold
# typed heads (models.typed_heads) over a plain estimator: name -> TypedHeads settings. Only "typed" is a default member;
# the others were screened by bench/typed_heads.py (mix chosen per type on inner folds; a third voter; lead extremes)
TYPED = {"typed": {"base": "vote"}, "typed-auto": {"base": "vote", "mix": "auto"}, "typed-vote3": {"base": "vote3"},
         "typed-sym": {"base": "vote-sym"}}
ESTIMATORS = ("logreg", "gbm", "extratrees", "vote", "vote3", "vote-sym", *TYPED)
DEFAULT_MODELS = ("features-logreg", "features-gbm", "features-extratrees", "features-vote", "features-typed")


def _estimator(kind: str, seed: int):
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, VotingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cw = {0: 1.0, 1: POS_WEIGHT}
    if kind == "logreg":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=0.05, class_weight=cw, max_iter=3000),
        )
    if kind == "gbm":
        return HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_depth=3, min_samples_leaf=8, l2_regularization=1.0, class_weight=cw, random_state=seed
        )
    if kind == "extratrees":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ExtraTreesClassifier(n_estimators=400, min_samples_leaf=2, class_weight=cw, random_state=seed, n_jobs=1),
        )
    if kind == "vote":
        return VotingClassifier([("logreg", _estimator("logreg", seed)), ("extratrees", _estimator("extratrees", seed))], voting="soft")
    if kind == "vote3":  # the vote with the gradient-boosted trees as a third voter (not a default member)
        parts = ("logreg", "extratrees", "gbm")
        return VotingClassifier([(k, _estimator(k, seed)) for k in parts], voting="soft")
    if kind == "vote-sym":  # the vote, also seeing each ECG feature's min and max over the two leads (not a default member)
        from sklearn.preprocessing import FunctionTransformer

        return make_pipeline(FunctionTransformer(with_lead_extremes), _estimator("vote", seed))
    if kind in TYPED:  # one head per alarm type mixed with a global one, calibrated per type
        from .typed_heads import TypedHeads

        return TypedHeads(**TYPED[kind], seed=seed)
    raise InvalidFieldError("estimator", "must be a known feature-model estimator", kind, ESTIMATORS)


_ECG1 = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith("ECG1_")]
_ECG2 = [FEATURE_NAMES.index("ECG2_" + FEATURE_NAMES[i].removeprefix("ECG1_")) for i in _ECG1]


def with_lead_extremes(X: np.ndarray) -> np.ndarray:
    """Design-matrix rows with, appended, the min and max over the two ECG slots of each per-lead feature: the same
    whichever lead a record puts first (NaN where both leads are NaN, the other lead's value where one is)."""
    X = np.asarray(X, dtype=np.float64)
    a, b = X[:, _ECG1], X[:, _ECG2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.hstack([X, np.fmin(a, b), np.fmax(a, b)])


def design_matrix(features: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
    """Feature rows with the alarm type appended as one-hot columns."""
    return np.hstack([np.asarray(features, dtype=np.float64), alarm_onehot(alarm_types)])


class FeatureModel:
    """A feature-based member: ``fit(features, alarm_types, y)``, then ``predict_proba`` on raw windows."""

    kind = "features"

    def __init__(self, name: str, estimator: str = "logreg", window_s: float = 16.0, inner_splits: int = 5, seed: int = 0):
        if estimator not in ESTIMATORS:
            raise InvalidFieldError("estimator", "must be a known feature-model estimator", estimator, ESTIMATORS)
        self.name = name
        self.estimator = estimator
        self.window_s = window_s
        self.inner_splits = inner_splits
        self.seed = seed

    # -- training -------------------------------------------------------------------------------------
    def _fit_estimator(self, X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return _estimator(self.estimator, self.seed).fit(X, y)

    def fit(self, features: np.ndarray, alarm_types: Sequence[str], y) -> "FeatureModel":
        """Fit on feature rows; ``threshold_`` comes from inner CV on these rows only."""
        y = np.asarray(y, dtype=int)
        if features.shape != (len(y), len(FEATURE_NAMES)):
            raise InvalidFieldError("features", f"must have shape ({len(y)}, {len(FEATURE_NAMES)})", features.shape)
        X = design_matrix(features, alarm_types)
        inner = self.inner_oof(features, alarm_types, y)
        self.threshold_ = best_threshold(y, inner)
        self.estimator_ = self._fit_estimator(X, y)
        self.n_features_in_ = X.shape[1]
        self.feature_names_ = FEATURE_NAMES
        return self

    def inner_oof(self, features: np.ndarray, alarm_types: Sequence[str], y) -> np.ndarray:
        """Out-of-fold probabilities over the given rows (record-level stratified folds)."""
        y = np.asarray(y, dtype=int)
        X = design_matrix(features, alarm_types)
        infos = [RecordInfo(str(i), a, int(l)) for i, (a, l) in enumerate(zip(alarm_types, y))]
        folds = cv_folds(infos, self.inner_splits, seed=self.seed + 1000)
        p = np.zeros(len(y))
        for k in range(self.inner_splits):
            tr, te = folds != k, folds == k
            p[te] = self._fit_estimator(X[tr], y[tr]).predict_proba(X[te])[:, 1]
        return p

    # -- inference ------------------------------------------------------------------------------------
    def proba_from_features(self, features: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "estimator_"):
            raise RuntimeError(f"{self.name} is not fitted: call fit() first")
        if getattr(self, "feature_names_", None) != FEATURE_NAMES:
            raise InvalidFieldError(
                "feature_names_", f"of {self.name} must match this version's {len(FEATURE_NAMES)} features (retrain it)",
                len(getattr(self, "feature_names_", ()) or ()),
            )
        X = design_matrix(features, alarm_types)
        with warnings.catch_warnings():  # the same values without scikit-learn's per-call checks (models.fast_predict)
            warnings.simplefilter("ignore", RuntimeWarning)
            return fast_proba(self.estimator_, X)[:, 1]

    def predict_proba(self, windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        check_batch(windows, masks, alarm_types)
        p = self.proba_from_features(extract_batch(windows, masks, FS_HZ), alarm_types)
        return check_output(self.name, p, len(windows))

    def predict(self, windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        """Verdict per window: True = true alarm (P >= threshold_)."""
        return self.predict_proba(windows, masks, alarm_types) >= self.threshold_

    def __repr__(self) -> str:
        return f"FeatureModel(name={self.name!r}, estimator={self.estimator!r})"


def make_feature_model(name: str, seed: int = 0) -> FeatureModel:
    """A feature model by registry name, e.g. 'features-gbm'."""
    est = name.removeprefix("features-")
    if not name.startswith("features-") or est not in ESTIMATORS:
        raise InvalidFieldError("model", "must be a known feature model", name, DEFAULT_MODELS)
    return FeatureModel(name, est, seed=seed)


__all__ = ["FeatureModel", "make_feature_model", "design_matrix", "DEFAULT_MODELS", "ALARM_TYPES"]
