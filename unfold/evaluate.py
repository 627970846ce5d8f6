"""Honest evaluation of the cascade on out-of-fold predictions, and the budget-vs-score curve.

For each fold k of ``models.data.cv_folds`` (seed 0) the gates are tuned on the other folds' out-of-fold
probabilities only and applied to fold k; the pooled verdicts give the challenge score. Cost per window is
what each window really ran (components paid once), against running the full ensemble on every window.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from models.metrics import auroc, challenge_score, summarize

from .cascade import Cascade, CascadeResult, Rung, Stage
from .costs import CostTable
from .oof import VENTRICULAR, CascadeData, subset


def default_stages(feature_model: str = "features-gbm") -> list[Stage]:
    def ladder(sfx: str):
        return (Rung(f"quick-trees{sfx}", ("quick_features", f"quick-trees{sfx}")),
                Rung(f"{feature_model}{sfx}", ("features", f"{feature_model}{sfx}")),
                Rung("ensemble", ("ensemble",)))

    return [Stage("stage1", ladder("")), Stage("stage2", ladder("-v"), alarm_types=VENTRICULAR)]


def model_ms(model, X: np.ndarray, alarm_types, batch: int = 64, repeats: int = 15) -> float:
    """Median ms per window of ``model.proba_from_features`` on feature rows at ``batch`` (one thread)."""
    from threadpoolctl import threadpool_limits

    idx = np.arange(batch) % len(X)
    rows, at = X[idx], [alarm_types[i] for i in idx]
    with threadpool_limits(limits=1):
        model.proba_from_features(rows, at)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.proba_from_features(rows, at)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times) / batch


def cost_table(data: CascadeData, models, ensemble_cost: dict) -> CostTable:
    """Measured costs: extractors (median per real window), rung models (batch 64), the ensemble (registry)."""
    at = list(data.alarm_types)
    comps = {"quick_features": {"ms": data.extract_ms["quick_features"], "note": "one ECG lead + one pulse at low rate, batch 64 real alarm windows"},
             "features": {"ms": data.extract_ms["features"], "note": "models.features.extract_batch, batch 64 real alarm windows"},
             "ensemble": ensemble_cost}
    for lead, fm in models:
        comps[lead.name] = {"ms": model_ms(lead, data.quick_X, at), "note": "forest on quick features, batch 64"}
        comps[fm.name] = {"ms": model_ms(fm, data.feat_X, at), "note": "feature model on feature rows, batch 64"}
    return CostTable(comps)


def nested_cv(data: CascadeData, probs, costs: CostTable, stages, budgets_ms, **kw) -> tuple[CascadeResult, list[dict]]:
    """Cascade verdicts for every window, fold k's gates tuned on the other folds only."""
    n = len(data.y)
    labels = data.labels()
    parts = {}
    fits = []
    for k in np.unique(data.folds):
        test = data.folds == k
        tr = ~test
        c = Cascade(stages, costs, budgets_ms, **kw).fit(subset(probs, tr), [l[tr] for l in labels], data.alarm_types[tr])
        parts[int(k)] = (np.flatnonzero(test), c.predict(subset(probs, test), data.alarm_types[test]))
        fits.append({"fold": int(k), "thresholds": [[g.to_dict() for g in row] for row in c.thresholds_], "fit": c.fit_report_})
    out = CascadeResult(np.zeros(n, dtype=int), np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=int), [[] for _ in range(n)],
                        np.zeros(n), np.zeros(n), {})
    for idx, r in parts.values():
        for f in ("stage", "probability", "positive", "level", "cost_ms", "macs"):
            getattr(out, f)[idx] = getattr(r, f)
        for j, i in enumerate(idx):
            out.paths[i] = r.paths[j]
        for key, v in r.stopped.items():
            out.stopped[key] = out.stopped.get(key, 0) + v
    return out, fits


def summary(data: CascadeData, res: CascadeResult, costs: CostTable, stages) -> dict:
    """Score, AUROC of the deciding probability, cost against the full ensemble, per-stage stops."""
    y = data.y.astype(bool)
    full_ms, full_macs = costs.ms("ensemble"), costs.macs("ensemble")
    n = len(y)
    per_stage = []
    for s, st in enumerate(stages):
        entered = np.array([any(name.startswith(st.name + "/") for name, _ in p) for p in res.paths])
        rungs = []
        for rung in st.rungs:
            key = f"{st.name}/{rung.name}"
            ran = np.array([any(name == key for name, _ in p) for p in res.paths])
            rungs.append({"rung": rung.name, "ran": int(ran.sum()),
                          **{d: res.stopped.get(f"{key}:{d}", 0) for d in ("ICK0", "IDK", "ICK1")},
                          "stopped_frac_of_stage": round(sum(res.stopped.get(f"{key}:{d}", 0) for d in ("ICK0", "ICK1")) / max(1, entered.sum()), 4)})
        per_stage.append({"stage": st.name, "entered": int(entered.sum()), "rungs": rungs})
    v = data.ventricular
    s2 = np.array([any(name.startswith(stages[-1].name + "/") for name, _ in p) for p in res.paths])
    true_v = y & v
    out = {
        "n": n, "score": challenge_score(y, res.positive), **{k: summarize(y, res.probability, res.positive)[k] for k in ("tpr", "tnr", "tp", "tn", "fp", "fn")},
        "auroc_deciding_prob": auroc(y, res.probability),
        "mean_ms": float(res.cost_ms.mean()), "mean_macs": float(res.macs.mean()),
        "full_ensemble_ms": full_ms, "full_ensemble_macs": full_macs,
        "ms_reduction_x": full_ms / max(res.cost_ms.mean(), 1e-12),
        "macs_reduction_x": (full_macs / res.macs.mean()) if res.macs.mean() > 0 else None,  # None: no window ran a network
        "frac_reached_ensemble": float(np.mean([any(name.endswith("/ensemble") for name, _ in p) for p in res.paths])),
        "per_stage": per_stage,
        "stage2": {"ventricular_windows": int(v.sum()), "entered": int(s2.sum()),
                   "true_ventricular": int(true_v.sum()),
                   "accuracy_on_true_alarms": float(np.mean((res.level[y] == 2) == v[y])) if y.any() else None,
                   "true_ventricular_confirmed": float(np.mean(res.level[true_v] == 2)) if true_v.any() else None,
                   "false_ventricular_rejected": float(np.mean(~res.positive[v & ~y])) if (v & ~y).any() else None},
    }
    return out


def baseline_rows(data: CascadeData, probs, costs: CostTable, stages) -> list[dict]:
    """Each stage-1 rung alone on every window (threshold per fold from the other folds), for the curve."""
    from models.zoo_eval import cv_summary

    rows = []
    for r, rung in enumerate(stages[0].rungs):
        cv = cv_summary(data.y, probs[0][r], data.folds)
        ms = sum(costs.ms(c) for c in rung.components)
        macs = sum(costs.macs(c) for c in rung.components)
        rows.append({"name": rung.name if rung.name != "ensemble" else f"full ensemble ({data.ensemble.name})",
                     "score": cv["score"], "auroc": cv["auroc"], "mean_ms": ms, "mean_macs": macs})
    return rows
