"""``fit_cascade``: the whole offline path on real records, end to end.

1. features of every alarm window (quick: one ECG lead + one pulse; all signals), timed in batches of 64;
2. out-of-fold probabilities of every rung on the shared folds (the ensemble's from the registry);
3. the cost table, measured in this run (extractors per window, rung models and the ensemble at batch 64);
4. nested CV of the cascade at each budget of the curve (gates for fold k tuned on the other folds);
5. the served cascade: rung models refitted on every record, gates tuned on all out-of-fold predictions.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from models.errors import InvalidFieldError

from .cascade import Cascade
from .costs import CostTable
from .ensemble import EnsembleRef
from .evaluate import baseline_rows, cost_table, default_stages, nested_cv, summary
from .oof import build_data, fit_rungs, oof_probs
from .persist import FittedCascade

DEFAULT_CURVE_MS = (0.12, 0.14, 0.16, 0.18, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 4.0, None)
DEFAULT_BUDGET_MS = 0.4  # ms per window per stage (priced with v0007's component costs): the served default, with
# DEFAULT_MAX_MISS_RATE: a cheap rung's ICK0 answers hold at most this fraction of true alarms on the tuning data
# (unfold.tuning). Chosen on nested CV over 5 fold seeds (bench/cascade_safe.py): 75.06 +- 1.30 vs the full ensemble's
# 72.26 +- 1.21 (every seed above it), 9.6 vs 16.4 missed true alarms (every seed at least 4 fewer), 13.1x less compute
# (11.5x on the worst seed); 0.05 is also under the ensemble's own false-omission rate (5.8-7.6 % of its negative
# answers are true alarms over the 5 seeds), so a cheap negative answer is at least as safe as the ensemble's.
DEFAULT_MAX_MISS_RATE = 0.05


def measure_ensemble(ensemble: EnsembleRef, records, batch: int = 64, repeats: int = 3) -> dict:
    """{"ms", "macs", "ms_separate"} per window of the ensemble in process on ``batch`` real alarm windows, one
    thread. ``ms``: the ensemble as ``EnsembleMember`` runs it (preprocessing and feature extraction once per
    batch, shared by the members): the reference the cascade is compared with. ``ms_separate``: every member
    on its own, each preprocessing or extracting for itself, as separate Serve deployments do."""
    import torch
    from threadpoolctl import threadpool_limits

    from models.zoo_eval import alarm_batch

    member = ensemble.load()
    idx = np.arange(batch) % len(records)
    w, m, a = alarm_batch([records[i] for i in idx], 16.0)

    def separate():
        for mem in member.members:
            mem.predict_proba(w, m, a)

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            member.predict_proba(w, m, a)
            shared, sep = [], []
            for _ in range(repeats):  # alternated, so both see the same machine
                t0 = time.perf_counter()
                member.predict_proba(w, m, a)
                t1 = time.perf_counter()
                separate()
                t2 = time.perf_counter()
                shared.append((t1 - t0) * 1e3)
                sep.append((t2 - t1) * 1e3)
    finally:
        torch.set_num_threads(old)
    reg = ensemble.cost()
    return {"ms": statistics.median(shared) / batch, "macs": reg["macs"], "ms_separate": statistics.median(sep) / batch,
            "note": f"{ensemble.name} ({len(ensemble.members)} members) in process, preprocessing and features once per batch, "
                    f"batch {batch} real windows, one thread; each member on its own: {statistics.median(sep) / batch:.2f} ms; "
                    f"registry profiles say {reg['ms']:.2f} ms"}


def ensemble_cost(ensemble: EnsembleRef, records=None, ms: float | None = None) -> dict:
    """The costly rung's entry of a cost table: ``ms`` per window if given (a price fixed elsewhere, e.g. measured by
    bench/cascade_safe.py, so a refit does not depend on this machine's load), else measured in process now
    (``measure_ensemble``, one thread, preprocessing and features shared); MACs from the registry profiles."""
    if ms is not None:
        if not (isinstance(ms, (int, float)) and np.isfinite(ms) and ms > 0):
            raise InvalidFieldError("--ensemble-ms", "must be a number of ms per window > 0", ms)
        return {"ms": float(ms), "macs": ensemble.cost()["macs"],
                "note": f"{ensemble.name} ({len(ensemble.members)} members): {float(ms):.4g} ms/window given (--ensemble-ms), not timed"}
    if records is None:
        raise InvalidFieldError("records", "must be given to measure the ensemble's cost", None)
    out = measure_ensemble(ensemble, records)
    out.pop("ms_separate")
    return out


def with_ensemble(costs: CostTable, ensemble: EnsembleRef, cost: dict) -> CostTable:
    """``costs`` with the costly rung priced by ``cost`` (the other components unchanged)."""
    return CostTable({**costs.to_dict(), "ensemble": dict(cost)})


def fit_cascade(records, ensemble: EnsembleRef, budget_ms: float | None = DEFAULT_BUDGET_MS, curve_ms=DEFAULT_CURVE_MS,
                feature_model: str = "features-vote", max_ick0: float = 0.5, min_ick1: float = 0.3, progress: bool = True,
                costs: CostTable | None = None, max_miss_rate: float | None = DEFAULT_MAX_MISS_RATE, ensemble_ms: float | None = None):
    """(FittedCascade, report). ``budget_ms``: per-stage budget of the served cascade (ms per window);
    ``max_miss_rate``: bound on the fraction of true alarms among a cheap rung's ICK0 answers (None: no bound),
    for the served gates and for every nested fit of the curve. ``costs``: a fixed cost table (None: measured
    now); ``ensemble_ms``: the costly rung's price per window (replaces the table's or the measured one).
    ``info["ensemble"]`` says what the costly rung is (``EnsembleRef.source``: a plan row of a plan file, or a
    registry ensemble row)."""
    from .cascade import check_miss_rate

    if budget_ms is not None and not budget_ms > 0:
        raise InvalidFieldError("budget_ms", "must be > 0 (or None for no budget)", budget_ms)
    max_miss_rate = check_miss_rate("max_miss_rate", max_miss_rate)
    t0 = time.perf_counter()
    labelled = [r for r in records if r.label is not None]
    if len(labelled) < 50:
        raise InvalidFieldError("records", "must hold at least 50 labelled records to fit a cascade", len(labelled))
    data = build_data(labelled, ensemble, progress)
    probs = oof_probs(data, feature_model, progress=progress)
    final_models = fit_rungs(data, np.ones(len(data.y), dtype=bool), feature_model)
    separate_ms = None
    if costs is None:
        if ensemble_ms is None:
            ens_cost = measure_ensemble(ensemble, labelled)
            separate_ms = ens_cost.pop("ms_separate")
        else:
            ens_cost = ensemble_cost(ensemble, ms=ensemble_ms)
        costs = cost_table(data, final_models, ens_cost)
    elif ensemble_ms is not None:
        costs = with_ensemble(costs, ensemble, ensemble_cost(ensemble, ms=ensemble_ms))
    stages = default_stages(feature_model)
    kw = {"max_ick0": max_ick0, "min_ick1": min_ick1, "max_miss_rate": max_miss_rate}
    curve = []
    for b in list(curve_ms) + ([budget_ms] if budget_ms not in curve_ms else []):
        res, _ = nested_cv(data, probs, costs, stages, [b, b], **kw)
        curve.append({"budget_ms": b, **summary(data, res, costs, stages)})
    res, fits = nested_cv(data, probs, costs, stages, [budget_ms, budget_ms], **kw)
    chosen = summary(data, res, costs, stages)
    cascade = Cascade(stages, costs, [budget_ms, budget_ms], **kw).fit(probs, data.labels(), data.alarm_types)
    models = {m.name: m for pair in final_models for m in pair}
    from models.calibration import ece
    from models.zoo_eval import cv_summary

    from .calibrate import fit_rung_maps, nested_published

    y = np.asarray(data.y)
    chosen["ece"] = ece(y, res.probability)
    chosen["ece_calibrated"] = ece(y, nested_published(res.probability, res.paths, y, data.folds))  # maps never saw fold k
    info = {"n_records": len(data.y), "records": data.records, "ensemble": ensemble.source(), "feature_model": feature_model,
            "budget_ms": budget_ms,
            "max_miss_rate": max_miss_rate,
            "miss_bound": "an ICK0 cut-off of a non-forced rung is admissible only if, on the data its gates are tuned on, the "
                          "fraction of true alarms among the windows it answers ICK0 is <= max_miss_rate (unfold.tuning)",
            "cv": chosen, "cv_fold_gates": fits, "curve": curve, "baselines": baseline_rows(data, probs, costs, stages),
            "full_ensemble_cv": cv_summary(data.y, data.ensemble_prob, data.folds), "fit_report": cascade.fit_report_,
            "full_ensemble_ms_members_separately": separate_ms,
            "calibration": fit_rung_maps(res.probability, res.paths, y, data.folds),  # what the served cascade publishes
            "fit_s": round(time.perf_counter() - t0, 1)}
    return FittedCascade(cascade, models, ensemble, info), {"data": data, "probs": probs, "costs": costs}
