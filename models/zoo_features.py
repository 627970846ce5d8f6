"""Feature models (``models.feature_models``) as registry entries, with the same profile as the CNNs.

Features of every record's alarm window are extracted once; each feature model is then cross-validated on
the shared folds (``models.data.cv_folds``: out-of-fold probabilities, fold thresholds chosen on the other
folds by ``models.zoo_eval.cv_summary``) and refitted on every record. Feature models have no
multiply-accumulate count comparable to a CNN's, so ``macs`` is 0 and ``params`` counts learned values
(coefficients, tree nodes).
"""

from __future__ import annotations

import importlib.util
from typing import Sequence

import numpy as np

from .data import Record


def features_available() -> bool:
    """True when the feature-model module is installed."""
    return importlib.util.find_spec("models.feature_models") is not None


def learned_values(estimator) -> int:
    """Coefficients plus tree nodes of a fitted scikit-learn estimator (pipelines and ensembles walked)."""
    est = estimator
    if hasattr(est, "sub_estimators"):  # per-alarm-type heads: the global model, the heads, 2 values per Platt map
        return sum(learned_values(e) for e in est.sub_estimators()) + 2 * len(est.maps_)
    if hasattr(est, "steps"):
        return sum(learned_values(s) for _, s in est.steps)
    if hasattr(est, "estimators_") and not hasattr(est, "tree_"):
        inner = est.estimators_
        flat = [e for row in inner for e in (row if isinstance(row, (list, np.ndarray)) else [row])]
        return sum(learned_values(e) for e in flat)
    if hasattr(est, "tree_"):
        return int(est.tree_.node_count)
    if hasattr(est, "_predictors"):  # HistGradientBoosting
        return int(sum(p.nodes.shape[0] for it in est._predictors for p in it))
    n = 0
    for attr in ("coef_", "intercept_"):
        if hasattr(est, attr):
            n += int(np.size(getattr(est, attr)))
    return n


def feature_entries(records: Sequence[Record], folds, seed: int, tiny: bool = False, names: Sequence[str] | None = None,
                    progress: bool = True) -> list[dict]:
    """Registry entries ({"member", "profile"}) for the default feature models, CV'd on ``folds`` and refitted."""
    import time

    from . import feature_models as fm
    from .features import extract_batch
    from .zoo_build import member_profile
    from .zoo_eval import alarm_batch

    names = list(names or (fm.DEFAULT_MODELS[:2] if tiny else fm.DEFAULT_MODELS))
    windows, masks, types = alarm_batch(records, 16.0)
    t = time.perf_counter()
    X = extract_batch(windows, masks)
    extract_s = time.perf_counter() - t
    y = np.array([int(r.label) for r in records])
    folds = np.asarray(folds)
    types_arr = np.array(types)
    it = names
    if progress:
        from tqdm import tqdm

        it = tqdm(names, desc="feature models", unit="model")
    out = []
    for name in it:
        t = time.perf_counter()
        oof = np.zeros(len(y))
        for k in np.unique(folds):
            tr, te = folds != k, folds == k
            model = fm.make_feature_model(name, seed=seed).fit(X[tr], list(types_arr[tr]), y[tr])
            oof[te] = model.proba_from_features(X[te], list(types_arr[te]))
        member = fm.make_feature_model(name, seed=seed).fit(X, types, y)
        member.n_params_ = learned_values(member.estimator_)
        member.n_macs_ = 0
        train = {"cv_and_refit_s": round(time.perf_counter() - t, 2), "feature_extract_s": round(extract_s, 2),
                 "n_features": int(X.shape[1]), "inner_threshold": float(member.threshold_)}
        config = {"estimator": member.estimator, "window_s": member.window_s, "inner_splits": member.inner_splits, "seed": seed}
        prof = member_profile(member, [r.name for r in records], oof, folds, y, seed, config, (0, 1, 2, 3), train,
                              latency_repeats=5)
        out.append({"member": member, "profile": prof})
    return out
