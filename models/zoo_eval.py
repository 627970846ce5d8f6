"""Scoring zoo members and their mean-probability ensembles: honest CV summaries and held-out predictions.

``cv_summary`` turns out-of-fold probabilities into the challenge score with the decision threshold of
fold k chosen on the other folds' out-of-fold predictions, never on fold k. ``predict_records`` scores
trained members on the alarm windows of any records (a held-out folder), adding the ensemble rows:

    cnn-ensemble            mean probability of every CNN member
    cnn+features-ensemble   mean of the CNN-ensemble probability and each feature model's probability
                            (only when feature models are present)

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1, 0, 1, 0, 1, 0, 1]); p = np.linspace(0.05, 0.95, 10) * 0 + y * 0.8 + 0.1
>>> s = cv_summary(y, p, np.arange(10) % 5)
>>> s["auroc"], s["score"]
(1.0, 100.0)
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .data import Record, alarm_window
from .metrics import auroc, best_threshold, challenge_score

CNN_ENSEMBLE = "cnn-ensemble"
ZOO_ENSEMBLE = "cnn+features-ensemble"


def cv_summary(labels, prob, folds) -> dict:
    """{"auroc", "score", "threshold", "fold_thresholds", "tpr", "tnr"} from out-of-fold probabilities.

    The score uses, for each fold, the threshold chosen on the other folds; "threshold" (chosen on all
    out-of-fold predictions) is the one a model refitted on every record serves with.
    """
    y = np.asarray(labels).astype(int)
    p = np.asarray(prob, dtype=np.float64)
    f = np.asarray(folds)
    pred = np.zeros(len(y), dtype=int)
    fold_t = []
    for k in np.unique(f):
        t = best_threshold(y[f != k], p[f != k])
        fold_t.append(round(t, 6))
        pred[f == k] = p[f == k] >= t
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    return {
        "auroc": round(auroc(y, p), 6),
        "score": round(challenge_score(y, pred), 4),
        "threshold": round(best_threshold(y, p), 6),
        "fold_thresholds": fold_t,
        "tpr": round(tp / max(1, int((y == 1).sum())), 4),
        "tnr": round(tn / max(1, int((y == 0).sum())), 4),
    }


def ensemble_prob(probs: Iterable[np.ndarray]) -> np.ndarray:
    """Mean probability of several members (each an array over the same records): ``models.ensemble``'s "mean"."""
    from .ensemble import combine

    probs = list(probs)
    return combine({str(i): p for i, p in enumerate(probs)}, {}, "mean")


def combine_rows(probs: dict[str, np.ndarray], kinds: dict[str, str]) -> dict[str, np.ndarray]:
    """Add the ensemble rows to per-member probabilities (``kinds``: member name -> "cnn" | "features")."""
    from .ensemble import combine

    out = dict(probs)
    cnn = [n for n, k in kinds.items() if k == "cnn" and n in probs]
    feat = [n for n, k in kinds.items() if k == "features" and n in probs]
    if cnn:
        out[CNN_ENSEMBLE] = combine(probs, kinds, "mean", cnn)
        if feat:
            out[ZOO_ENSEMBLE] = combine(probs, kinds, "zoo", cnn + feat)
    return out


def alarm_batch(records: Sequence[Record], window_s: float = 16.0):
    """(windows [N, 5, n], masks [N, 5], alarm_types) for the windows ending at each record's alarm."""
    windows = np.stack([alarm_window(r, window_s) for r in records]).astype(np.float32)
    masks = np.stack([r.mask for r in records])
    return windows, masks, [r.alarm_type for r in records]


def predict_records(members: Sequence, records: Sequence[Record], batch_size: int = 64, progress: bool = False) -> dict[str, np.ndarray]:
    """P(true alarm) of every member on the alarm window of every record, plus the ensemble rows.

    ``members``: objects implementing ``models.member.Member`` (e.g. ``Registry.load_all()``); each is fed
    windows of its own ``window_s`` (16 s when it has none). Returns {name: float64 [len(records)]}.
    """
    from .member import check_output

    probs: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    it = members
    if progress:
        from tqdm import tqdm

        it = tqdm(members, desc="members", unit="model")
    by_window: dict[float, tuple] = {}
    for m in it:
        window_s = float(getattr(m, "window_s", 16.0))
        if window_s not in by_window:
            by_window[window_s] = alarm_batch(records, window_s)
        windows, masks, types = by_window[window_s]
        out = [
            check_output(m.name, m.predict_proba(windows[s : s + batch_size], masks[s : s + batch_size], types[s : s + batch_size]),
                         len(types[s : s + batch_size]))
            for s in range(0, len(records), batch_size)
        ]
        probs[m.name] = np.concatenate(out) if out else np.zeros(0)
        kinds[m.name] = m.kind
    return combine_rows(probs, kinds)


def oof_calibrators(profiles: Sequence[dict]) -> dict:
    """{member or ensemble row: ``Calibrator``} fitted on the registry's out-of-fold predictions (method chosen by
    CV over the registry folds), for every member and the ensemble rows built from them."""
    from .calibration import fit_on_oof

    common = set.intersection(*(set(p["oof"]["records"]) for p in profiles)) if profiles else set()
    if not common:
        return {}
    first = profiles[0]["oof"]
    pos0 = {r: i for i, r in enumerate(first["records"])}
    records = sorted(common)
    y = np.array([int(first["label"][pos0[r]]) for r in records])
    folds = np.array([int(first["fold"][pos0[r]]) for r in records])
    probs = {}
    for p in profiles:
        pos = {r: i for i, r in enumerate(p["oof"]["records"])}
        probs[p["name"]] = np.asarray(p["oof"]["prob"], dtype=np.float64)[[pos[r] for r in records]]
    rows = combine_rows(probs, {p["name"]: p["kind"] for p in profiles})
    return {name: fit_on_oof(prob, y, folds) for name, prob in rows.items()}
