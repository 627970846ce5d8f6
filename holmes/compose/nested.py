"""Which ensemble rule generalises: every choice made on inner folds, every figure on outer folds.

The members' out-of-fold (OOF) predictions (``ZooTable``) are the inputs: no model is refitted. For each fold
seed the records are split into 5 outer folds (record-grouped, stratified, ``models.data.cv_folds``); on the
outer training part a rule is fitted (its subset, weights or stacker), then

1. inner 5-fold predictions of the rule on the training part give the data on which the calibration map is
   chosen (``models.calibration.choose``: none / Platt / temperature / isotonic by CV log loss) and fitted,
   and the decision threshold (one, or one per alarm type) is chosen on the calibrated inner predictions;
2. the rule refitted on the whole training part scores the outer fold, calibrated, thresholded.

So a stated score never saw the records it is scored on through the subset, the weights, the calibration or the
threshold. One second-order path remains, as in any stacking on out-of-fold predictions: the members' OOF
predictions on the training part came from members whose own training folds included the scored records.
Rules:

    features-vote   the global feature model alone (baseline)
    features-typed  the per-alarm-type heads alone (``models.typed_heads``; registry v0004 on)
    zoo             mean of (mean of the CNNs) and each feature model: today's registry ensemble
    mean-all        mean of every member
    greedy          the composer's greedy search (members by AUROC, best prefix), no latency limit
    genetic         the composer's surrogate-guided genetic search, no latency limit
    stacking        L2 logistic regression on the members' logits and the alarm type, C chosen on inner folds
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from models.calibration import Calibrator, choose, ece
from models.data import ALARM_TYPES, RecordInfo, cv_folds
from models.errors import InvalidFieldError
from models.metrics import auroc, best_threshold, summarize

from .table import ZooTable

RULES = ("features-vote", "features-typed", "zoo", "mean-all", "greedy", "genetic", "stacking")
SINGLE = ("features-vote", "features-typed")  # rules that are one member alone
STACK_C = (0.003, 0.01, 0.03, 0.1, 0.3)
MIN_TYPE_RECORDS = 12  # an alarm type with fewer training records (or one class) uses the global threshold

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (P [M, n], type index [n]) -> prob [n]


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _weighted(w: np.ndarray) -> Predictor:
    w = np.asarray(w, dtype=np.float64) / w.sum()
    return lambda P, t: w @ P


def _subset_search(method: str, table: ZooTable, seed: int) -> np.ndarray:
    from .genetic import genetic
    from .scoring import Evaluator
    from .search import greedy_accuracy

    ev = Evaluator(table)
    free = lambda masks: np.zeros(len(np.atleast_2d(masks)))  # noqa: E731 - no latency limit in this study
    res = greedy_accuracy(ev, free, np.inf) if method == "greedy" else genetic(ev, free, np.inf, seed=seed)
    return res.mask.astype(np.float64)


def _stack_design(P: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.hstack([_logit(P).T, np.eye(len(ALARM_TYPES))[t]])


def _fit_stacker(P, y, t, C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000).fit(_stack_design(P, t), y)


def fit_rule(rule: str, table: ZooTable, P: np.ndarray, y: np.ndarray, t: np.ndarray, seed: int = 0) -> Predictor:
    """Fit ``rule`` on members' OOF probabilities ``P`` [M, n] of training records (labels ``y``, alarm-type
    index ``t``); ``table`` gives the member names and kinds. Returns a predictor for other records."""
    kinds = np.array(table.kinds)
    if rule in SINGLE:
        if rule not in table.names:
            raise InvalidFieldError("rule", "names a member this registry version does not hold", rule, list(table.names))
        return _weighted(np.array([n == rule for n in table.names], dtype=np.float64))
    if rule == "mean-all":
        return _weighted(np.ones(len(kinds)))
    if rule == "zoo":
        cnn, feat = kinds == "cnn", kinds == "features"
        w = np.where(cnn, 1.0 / max(cnn.sum(), 1), 0.0) + feat.astype(np.float64)
        return _weighted(w)
    if rule in ("greedy", "genetic"):
        sub = ZooTable(table.names, table.kinds, table.latency_ms, table.batch_sizes, P, y, np.zeros(len(y), int),
                       tuple(str(i) for i in range(len(y))))
        return _weighted(_subset_search(rule, sub, seed))
    if rule == "stacking":
        inner = _inner_folds(y, t, seed)
        losses = []
        for C in STACK_C:
            out = np.empty(len(y))
            for k in np.unique(inner):
                te = inner == k
                out[te] = _fit_stacker(P[:, ~te], y[~te], t[~te], C).predict_proba(_stack_design(P[:, te], t[te]))[:, 1]
            losses.append(-np.mean(y * np.log(np.clip(out, 1e-6, 1)) + (1 - y) * np.log(np.clip(1 - out, 1e-6, 1))))
        model = _fit_stacker(P, y, t, STACK_C[int(np.argmin(losses))])
        return lambda Pn, tn: model.predict_proba(_stack_design(Pn, tn))[:, 1]
    raise InvalidFieldError("rule", "must be one of the ensemble rules", rule, RULES)


def _inner_folds(y: np.ndarray, t: np.ndarray, seed: int, n_splits: int = 5) -> np.ndarray:
    infos = [RecordInfo(str(i), ALARM_TYPES[k], int(v)) for i, (k, v) in enumerate(zip(t, y))]
    return cv_folds(infos, n_splits=n_splits, seed=seed)


@dataclass
class FoldFit:
    predictor: Predictor
    calibrator: Calibrator
    threshold: float
    type_thresholds: dict[int, float]


def fit_with_inner(rule: str, table: ZooTable, P, y, t, seed: int) -> FoldFit:
    """The rule on the training part, its calibration map and thresholds chosen on inner-fold predictions."""
    inner = _inner_folds(y, t, seed + 1000)
    pred = np.empty(len(y))
    for k in np.unique(inner):
        te = inner == k
        pred[te] = fit_rule(rule, table, P[:, ~te], y[~te], t[~te], seed)(P[:, te], t[te])
    method, _ = choose(pred, y, inner)
    cal = Calibrator.fit(method, pred, y)
    cp = cal.transform(pred)
    thr = best_threshold(y, cp)
    per = {}
    for k in np.unique(t):
        m = t == k
        if m.sum() >= MIN_TYPE_RECORDS and 0 < y[m].sum() < m.sum():
            per[int(k)] = best_threshold(y[m], cp[m])
    return FoldFit(fit_rule(rule, table, P, y, t, seed), cal, thr, per)


def nested_rule(rule: str, table: ZooTable, alarm_types: Sequence[str], seed: int, outer: np.ndarray | None = None) -> dict:
    """Outer-fold predictions of one rule for one fold seed: raw and calibrated probabilities, verdicts with one
    threshold and with per-type thresholds, and the calibration method chosen in each fold. ``outer``: the
    outer fold of each record (default: record-grouped, stratified folds drawn with ``seed``)."""
    y = np.asarray(table.y).astype(int)
    t = np.array([ALARM_TYPES.index(a) for a in alarm_types])
    outer = _inner_folds(y, t, seed) if outer is None else np.asarray(outer)
    raw, cal, pred_g, pred_t = (np.empty(len(y)) for _ in range(4))
    methods: list[str] = []
    for k in np.unique(outer):
        te = outer == k
        f = fit_with_inner(rule, table, table.oof[:, ~te], y[~te], t[~te], seed)
        raw[te] = f.predictor(table.oof[:, te], t[te])
        cal[te] = f.calibrator.transform(raw[te])
        pred_g[te] = cal[te] >= f.threshold
        pred_t[te] = cal[te] >= np.array([f.type_thresholds.get(int(k2), f.threshold) for k2 in t[te]])
        methods.append(f.calibrator.method)
    return {"raw": raw, "cal": cal, "pred_global": pred_g.astype(int), "pred_type": pred_t.astype(int), "methods": methods}


def figures(y, alarm_types, out: dict) -> dict:
    """Score, AUROC, TPR, TNR, ECE (raw and calibrated) and per-type scores of one nested run."""
    res = {}
    for mode in ("global", "type"):
        s = summarize(y, out["cal"], out[f"pred_{mode}"], alarm_types)
        res[mode] = {"score": s["score"], "tpr": s["tpr"], "tnr": s["tnr"], "fn": s["fn"],
                     "per_type": {k: v["score"] for k, v in s["per_type"].items()}}
    res["auroc"] = auroc(y, out["cal"])
    res["auroc_raw"] = auroc(y, out["raw"])
    res["ece_raw"] = ece(y, out["raw"])
    res["ece"] = ece(y, out["cal"])
    res["methods"] = {m: out["methods"].count(m) for m in sorted(set(out["methods"]))}
    return res
