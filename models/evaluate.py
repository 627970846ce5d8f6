"""Nested, record-grouped cross-validation of feature models, and scoring of trained members on a folder.

Cross-validation: for each seed, ``cv_folds(infos, 5, seed)`` splits the records (one record = one
group, stratified by alarm type and label); each outer training part fits the model and chooses its
threshold on inner folds of that part only; the outer fold is then scored. Figures are reported per
seed and as mean and standard deviation over seeds. Seed 0's out-of-fold probabilities are kept: they
use the same folds as every other member of the zoo, so ensembles and cascades are scored from them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .calibration import ece, nested_calibrate
from .data import Record, alarm_window, cv_folds
from .feature_models import DEFAULT_MODELS, make_feature_model
from .features import N_FEATURES, extract
from .metrics import summarize


def alarm_features(records: Sequence[Record], window_s: float = 16.0, progress: bool = False) -> np.ndarray:
    """Features of the window ending at the alarm for every record, [n_records, N_FEATURES]."""
    it = records
    if progress:
        from tqdm import tqdm

        it = tqdm(records, desc="features", unit="rec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = [extract(alarm_window(r, window_s), r.mask, r.fs_hz) for r in it]
    return np.stack(rows) if rows else np.empty((0, N_FEATURES))


@dataclass
class ModelResult:
    """One model's figures: overall/per-type summary per seed, and seed 0's out-of-fold predictions."""

    name: str
    per_seed: list[dict] = field(default_factory=list)
    oof_prob: np.ndarray | None = None
    oof_pred: np.ndarray | None = None
    oof_threshold: np.ndarray | None = None  # threshold used for each record's fold
    oof_calibrated: np.ndarray | None = None  # seed 0's OOF probabilities through the nested calibration map

    def row(self) -> dict:
        """The JSON row: mean over seeds of each figure, with spreads and per-type means."""

        def mean(key, src):
            v = np.array([s[key] for s in src], dtype=float)
            return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

        def std(key, src):
            v = np.array([s[key] for s in src], dtype=float)
            return float(np.nanstd(v)) if np.isfinite(v).any() else float("nan")

        out = {"name": self.name}
        for k in ("score", "auroc", "tpr", "tnr", "ece", "ece_calibrated"):
            out[k] = mean(k, self.per_seed)
            out[f"{k}_std"] = std(k, self.per_seed)
        out["n"] = self.per_seed[0]["n"]
        out["seeds"] = [{k: s[k] for k in ("score", "auroc", "tpr", "tnr", "ece", "ece_calibrated")} for s in self.per_seed]
        types = self.per_seed[0].get("per_type", {})
        out["per_type"] = {
            t: {k: mean(k, [s["per_type"][t] for s in self.per_seed]) for k in ("n", "score", "auroc", "tpr", "tnr")} for t in types
        }
        return out


def cross_validate(
    records: Sequence[Record],
    model_names: Sequence[str] = DEFAULT_MODELS,
    seeds: Sequence[int] = (0, 1, 2),
    n_splits: int = 5,
    features: np.ndarray | None = None,
    progress: bool = False,
) -> list[ModelResult]:
    """Nested CV of each feature model over ``seeds``; returns one ModelResult per model."""
    labelled = [r for r in records if r.label is not None]
    if len(labelled) < n_splits * 2:
        from .errors import InvalidFieldError

        raise InvalidFieldError("records", f"must hold at least {2 * n_splits} labelled records for {n_splits}-fold CV", len(labelled))
    F = alarm_features(labelled, progress=progress) if features is None else features
    y = np.array([r.label for r in labelled])
    at = np.array([r.alarm_type for r in labelled])
    infos = [r.info for r in labelled]
    results = {n: ModelResult(n) for n in model_names}
    jobs = [(s, n, k) for s in seeds for n in model_names for k in range(n_splits)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="nested CV fits", unit="fit")
    for seed in seeds:
        folds = cv_folds(infos, n_splits, seed)
        for name in model_names:
            prob = np.zeros(len(y))
            thr = np.zeros(len(y))
            for k in range(n_splits):
                tr, te = folds != k, folds == k
                m = make_feature_model(name, seed=seed).fit(F[tr], at[tr], y[tr])
                prob[te] = m.proba_from_features(F[te], at[te])
                thr[te] = m.threshold_
                if bar is not None:
                    bar.update(1)
            pred = prob >= thr
            cal, _ = nested_calibrate(prob, y, folds)  # fold k's map chosen and fitted on the other folds
            results[name].per_seed.append({**summarize(y, prob, pred, at), "ece": ece(y, prob), "ece_calibrated": ece(y, cal)})
            if seed == seeds[0]:
                r = results[name]
                r.oof_prob, r.oof_pred, r.oof_threshold, r.oof_calibrated = prob, pred, thr, cal
    if bar is not None:
        bar.close()
    return list(results.values())


def score_members(members, records: Sequence[Record], window_s: float = 16.0, batch_size: int = 64) -> list[dict]:
    """Score trained members (anything with predict_proba and threshold_) on records they never saw."""
    labelled = [r for r in records if r.label is not None]
    y = np.array([r.label for r in labelled])
    at = [r.alarm_type for r in labelled]
    W = np.stack([alarm_window(r, window_s) for r in labelled])
    M = np.stack([r.mask for r in labelled])
    rows = []
    for m in members:
        prob = np.concatenate([m.predict_proba(W[i : i + batch_size], M[i : i + batch_size], at[i : i + batch_size]) for i in range(0, len(W), batch_size)])
        row = {"name": m.name, **summarize(y, prob, prob >= getattr(m, "threshold_", 0.5), at)}
        row["threshold"] = float(getattr(m, "threshold_", 0.5))
        rows.append(row)
    return rows
