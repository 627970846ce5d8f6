"""Compose: for each latency budget, the ensemble with the best OOF AUROC whose predicted p99 latency at the
load fits the budget, and the threshold a service uses.

A plan row states nested figures (``score``, ``auroc``, ``tpr``, ``tnr``): for each of the registry's folds the
search and the threshold are run on the other folds' out-of-fold predictions only, and the fold is scored with
what they chose, so the figure covers the selection as well as the model. ``score_in_sample`` is the chosen
subset scored on the predictions it was selected on (thresholds still nested): optimistic, kept to show the gap.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from models.calibration import fit_on_oof
from models.errors import InvalidFieldError

from ..queueing import LatencyModel, Load
from .genetic import genetic
from .plan import EnsembleSpec, Plan
from .scoring import Evaluator, ensemble_prob, nested_score
from .search import exhaustive, greedy_accuracy, greedy_latency, random_search
from .table import ZooTable

METHODS = {
    "genetic": genetic,
    "exhaustive": exhaustive,
    "greedy_accuracy": greedy_accuracy,
    "greedy_latency": greedy_latency,
    "random": random_search,
}


def latency_fn(table: ZooTable, model: LatencyModel, load: Load):
    """bool [K, M] -> predicted p99 latency (ms) at ``load``."""
    return lambda masks: model.predict(table, masks, load)["p99_ms"]


def search(table: ZooTable, budget_ms: float, load: Load, model: LatencyModel, method: str = "genetic", **kw):
    if method not in METHODS:
        raise InvalidFieldError("method", "must be a known search method", method, list(METHODS))
    if not budget_ms > 0:
        raise InvalidFieldError("budget_ms", "must be > 0", budget_ms)
    return METHODS[method](Evaluator(table), latency_fn(table, model, load), float(budget_ms), **kw)


def nested_selection(table: ZooTable, budget_ms: float, load: Load, model: LatencyModel, method: str = "genetic"):
    """(probability, verdict) per record of "search this budget, then threshold", each fold's search and threshold
    run on the other folds only. A fold where the search finds nothing within the budget gets no verdict (all
    false: its true alarms count as missed), which is what serving that procedure would have given."""
    from models.metrics import best_threshold

    y, folds = np.asarray(table.y).astype(int), np.asarray(table.folds)
    prob, pred = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
    for k in np.unique(folds):
        test = folds == k
        r = search(table.take(~test), budget_ms, load, model, method)
        if not r.found:
            continue
        p = ensemble_prob(table, r.mask)
        prob[test] = p[test]
        pred[test] = p[test] >= best_threshold(y[~test], p[~test])
    return prob, pred


def nested_selection_score(table: ZooTable, budget_ms: float, load: Load, model: LatencyModel, method: str = "genetic") -> dict:
    """{"score", "auroc", "tpr", "tnr"} of ``nested_selection``: the figures a plan row states."""
    from models.metrics import auroc, challenge_score, confusion

    y = np.asarray(table.y).astype(int)
    prob, pred = nested_selection(table, budget_ms, load, model, method)
    tp, tn, fp, fn = confusion(y, pred)
    return {"score": challenge_score(y, pred), "auroc": auroc(y, prob), "tpr": tp / max(1, tp + fn), "tnr": tn / max(1, tn + fp)}


def compose(
    table: ZooTable,
    budgets_ms: Sequence[float],
    load: Load,
    model: LatencyModel | None = None,
    method: str = "genetic",
    registry: dict | None = None,
    progress: bool = True,
) -> Plan:
    model = model or LatencyModel()
    specs = []
    for budget in tqdm(list(budgets_ms), desc=f"compose ({method})", unit="budget", disable=not progress):
        r = search(table, budget, load, model, method)
        members = tuple(np.asarray(table.names)[r.mask].tolist())
        if not r.found:
            specs.append(EnsembleSpec(f"budget_{budget:g}ms", (), budget_ms=float(budget), method=method,
                                      n_evaluated=r.n_evaluated, search_s=r.search_s))
            continue
        lat = model.predict(table, r.mask[None], load)
        sc = nested_score(table, r.mask)
        nested = nested_selection_score(table, budget, load, model, method)
        cal = fit_on_oof(ensemble_prob(table, r.mask), table.y, table.folds)  # what the service publishes
        specs.append(EnsembleSpec(
            f"budget_{budget:g}ms", members, threshold=sc["threshold"], budget_ms=float(budget), auroc=nested["auroc"],
            score=nested["score"], tpr=nested["tpr"], tnr=nested["tnr"], score_in_sample=sc["score"], calibration=cal.to_dict(),
            service_ms=float(lat["service_ms"][0]), p50_ms=float(lat["p50_ms"][0]),
            p99_ms=float(lat["p99_ms"][0]), method=method, n_evaluated=r.n_evaluated, search_s=r.search_s,
        ))
    used = {m for s in specs for m in s.members}
    member_lat = {n: {str(b): float(v) for b, v in zip(table.batch_sizes, row)} for n, row in zip(table.names, table.latency_ms) if n in used}
    load_d = {"beds": load.beds, "rate_hz": load.rate_hz, "max_request_windows": load.max_request_windows, "arrival": load.arrival}
    kinds = {n: k for n, k in zip(table.names, table.kinds) if n in used}
    return Plan(tuple(specs), member_lat, model.to_dict(), load_d, registry or {}, kinds)
