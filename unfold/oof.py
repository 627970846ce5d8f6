"""Out-of-fold inputs of the cascade on real records: every rung's probability per alarm window, the stage
labels, and the measured cost of each compute component.

Stages (fixed here, documented in ``unfold/__init__``):

    stage 1  "life-threatening arrhythmia present"   every window          label = true alarm
    stage 2  "ventricular arrhythmia"                 ventricular alarms    label = true alarm (a true VT/VF)

Stage 2 runs only for ``Ventricular_Tachycardia`` / ``Ventricular_Flutter_Fib`` alarms; for the other
types "ventricular arrhythmia" is not what the monitor claimed, so a stage-1 ICK1 is final there. Its
rungs are fitted on ventricular records only (specialists), and its last rung is the same ensemble
(paid once per window).

Rungs 1-2 of each stage are fitted here on ``models.data.cv_folds`` (5 folds, seed 0: the folds of every
registry member); rung 3 is the ensemble, whose out-of-fold probability comes from the registry's
profiles (the members' OOF predictions on the same folds).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
import numpy as np
from threadpoolctl import threadpool_limits

from models.errors import InvalidFieldError

from .ensemble import EnsembleRef

VENTRICULAR = ("Ventricular_Tachycardia", "Ventricular_Flutter_Fib")


@dataclass
class CascadeData:
    records: list[str]
    alarm_types: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    quick_X: np.ndarray  # quick features (unfold.lead)
    feat_X: np.ndarray
    ensemble_prob: np.ndarray
    ensemble: EnsembleRef
    extract_ms: dict = field(default_factory=dict)  # extractor -> ms per window in batches of 64, measured on these windows

    @property
    def ventricular(self) -> np.ndarray:
        return np.isin(self.alarm_types, VENTRICULAR)

    def labels(self) -> list[np.ndarray]:
        """Stage labels: stage 1 true alarm; stage 2 true alarm of a ventricular type (0 elsewhere)."""
        return [self.y.astype(bool), self.y.astype(bool) & self.ventricular]


def timed_batches(fn, W: np.ndarray, M: np.ndarray, batch: int) -> tuple[np.ndarray, list[float]]:
    """Rows of ``fn`` over the windows in batches of ``batch``, and the ms per window of each full batch."""
    rows, per_window = [], []
    for i in range(0, len(W), batch):
        t0 = time.perf_counter()
        rows.append(fn(W[i : i + batch], M[i : i + batch]))
        if len(W[i : i + batch]) == batch:
            per_window.append((time.perf_counter() - t0) * 1e3 / batch)
    return np.concatenate(rows), per_window


def build_data(records, ensemble: EnsembleRef, progress: bool = True, batch: int = 64) -> CascadeData:
    """Features of every labelled record's alarm window and the ensemble's OOF.

    The extractors run in batches of ``batch`` windows, as in the stream (one batch per tick) and as the
    ensemble is costed; ``extract_ms`` is the median ms per window over the full batches (one thread).
    """
    from models.data import alarm_window, cv_folds
    from models.features import extract_batch

    from .lead import quick_features_batch

    recs = [r for r in records if r.label is not None]
    names = [r.name for r in recs]
    prob, folds_reg = ensemble.oof(names)
    folds = cv_folds([r.info for r in recs], 5, seed=0)
    if not np.array_equal(folds, folds_reg):
        raise InvalidFieldError("folds", "of the registry's OOF must equal models.data.cv_folds(records, 5, seed=0)",
                                int((folds != folds_reg).sum()))
    W = np.stack([alarm_window(r, 16.0) for r in recs])
    M = np.stack([r.mask for r in recs])
    steps = [("quick_features", quick_features_batch), ("features", extract_batch)]
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="features (quick, multi-signal)", unit="extractor")
    out, ms = {}, {}
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, fn in steps:
            out[name], t = timed_batches(fn, W, M, min(batch, len(W)))
            ms[name] = float(np.median(t))
    return CascadeData(names, np.array([r.alarm_type for r in recs]), np.array([int(r.label) for r in recs]), folds,
                       out["quick_features"], out["features"], prob, ensemble, ms)


def make_rung_models(stage: int, feature_model: str = "features-gbm", seed: int = 0):
    """(lead model, multi-signal feature model) of one stage, unfitted."""
    from models.feature_models import make_feature_model

    from .lead import LeadModel

    suffix = "" if stage == 1 else "-v"
    fm = make_feature_model(feature_model, seed=seed)
    fm.name = f"{feature_model}{suffix}"
    return LeadModel(f"quick-trees{suffix}", seed=seed), fm


def fit_rungs(data: CascadeData, train: np.ndarray, feature_model: str = "features-gbm", seed: int = 0):
    """Rung models of both stages fitted on the windows ``train`` (bool [N]); stage 2 on ventricular ones."""
    out = []
    for stage, rows in ((1, train), (2, train & data.ventricular)):
        lead, fm = make_rung_models(stage, feature_model, seed)
        at = list(data.alarm_types[rows])
        with threadpool_limits(limits=1):
            lead.fit(data.quick_X[rows], at, data.y[rows])
            fit_feature_model(fm, data.feat_X[rows], at, data.y[rows])
        out.append((lead, fm))
    return out


def fit_feature_model(fm, features: np.ndarray, alarm_types, y):
    """Fit a ``models.feature_models.FeatureModel`` without its inner-CV threshold search: in the cascade
    the gates decide, so ``threshold_`` is only the plain 0.5 of a stand-alone verdict."""
    from models.feature_models import design_matrix
    from models.features import FEATURE_NAMES

    X = design_matrix(features, alarm_types)
    fm.estimator_ = fm._fit_estimator(X, np.asarray(y, dtype=int))
    fm.n_features_in_ = X.shape[1]
    fm.feature_names_ = FEATURE_NAMES
    fm.threshold_ = 0.5
    return fm


def rung_probs(models, data: CascadeData, rows: np.ndarray) -> list[list[np.ndarray]]:
    """probs[stage][rung] on the windows ``rows`` (rung 3 = the ensemble's OOF)."""
    at = list(data.alarm_types[rows])
    out = []
    for lead, fm in models:
        out.append([lead.proba_from_features(data.quick_X[rows], at), fm.proba_from_features(data.feat_X[rows], at),
                    data.ensemble_prob[rows]])
    return out


def oof_probs(data: CascadeData, feature_model: str = "features-gbm", seed: int = 0, progress: bool = True):
    """Out-of-fold probs[stage][rung] [N] over all windows (fold k's rungs fitted on the other folds)."""
    n = len(data.y)
    probs = [[np.zeros(n) for _ in range(3)] for _ in range(2)]
    ks = np.unique(data.folds)
    it = ks
    if progress:
        from tqdm import tqdm

        it = tqdm(ks, desc="rung models, out of fold", unit="fold")
    for k in it:
        test = data.folds == k
        models = fit_rungs(data, ~test, feature_model, seed)
        part = rung_probs(models, data, test)
        for s in range(2):
            for r in range(3):
                probs[s][r][test] = part[s][r]
    return probs


def subset(probs, rows) -> list[list[np.ndarray]]:
    return [[np.asarray(p)[rows] for p in stage] for stage in probs]


__all__ = ["CascadeData", "VENTRICULAR", "build_data", "timed_batches", "fit_rungs", "rung_probs", "oof_probs", "subset", "make_rung_models"]

