"""The verdict averaged over the alarm window and the windows ending 1..K s before it, through a calibration map.

The served verdict blend is mean(plan row on the alarm window, ``features-typed-inc`` on the patient's streamed state).
The incremental model scored on the windows ending 1..K s earlier (the incremental scorer kept their features) and
averaged, then passed through a map fitted on out-of-fold data, scores better on nested, record-grouped CV
(``bench/shift_nested.py``, K and the map chosen on inner folds: +0.96 +/- 1.00 over the unshifted blend, 4/5 fold seeds,
ECE 0.038). The row may average its earlier windows too (``k_row`` > 0: +1.42 +/- 1.13 in the same run, paired -0.47 +/-
1.33 for the row alone, within the noise), but each is one more window the service featurizes: served with ``k_row`` 0.

``fit`` chooses K (0..``MAX_K``, ``k_row`` given) and the map for serving: out-of-fold probabilities of ``features-typed``
on batch features and on incremental features at each shift, under the registry's folds (``models.data.cv_folds``, seed
0), each passed through the map it is served with (the plan's verdict row's, the incremental model's); K is the one whose
blend, calibrated on the other folds, scores best at the 1/6 cut; the map is fitted on all of that K's out-of-fold blends.

    .venv/bin/python -m models.verdict_shift [--data DIR] [--out artifacts/incremental/verdict-shift.json] [--jobs 2]

It also fits the alarm definitions' gate (``models.definition_gate``) on that K's blend calibrated on the other folds, with
the readings of the alarm window's batch features, and keeps it in the same file (``gate``); then the VT re-scorer
(``models.vt_spectral``) on those gated blends of the VT alarms and the spectral readings of their alarm windows
(``vt_rescorer``), which replaces every VT verdict after the gate.

The figures it writes are out-of-fold selection figures, not a nested estimate (``bench/shift_nested.py`` gives that).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .calibration import Calibrator, ece, fit_on_oof, nested_calibrate
from .data import ALARM_S, RecordInfo, alarm_window, cv_folds, load_dataset, resolve_data_dir
from .definition_gate import DefinitionGate
from .definition_gate import fit_served as fit_served_gate
from .errors import InvalidFieldError
from .incremental_model import DEFAULT_DIR, MODEL, stream_hops
from .vt_spectral import VT, VTRescorer, gate_and_rescore
from .vt_spectral import fit as fit_vt_rescorer
from .vt_spectral import readings as vt_readings

NAME = "verdict-shift"
DEFAULT_PATH = DEFAULT_DIR / f"{NAME}.json"
MAX_K = 4
CUT = 1.0 / 6.0


@dataclass(frozen=True)
class VerdictShift:
    """K earlier windows (1 s apart) averaged into the verdict's incremental side, ``k_row`` of them into the row's
    side, and the map of the averaged blend. ``k_row`` 0 (the default fit): the service scores the alarm window alone,
    so the shift costs it nothing; each earlier window the row averages is one more window the service featurizes."""

    k: int
    calibrator: Calibrator
    row: str | None = None  # the plan row whose answers the map was fitted on
    k_row: int | None = None  # None: k (files written before the row's side had its own K)
    gate: DefinitionGate | None = None  # the alarm definitions' gate fitted on the same out-of-fold blend (None: none)
    vt_rescorer: VTRescorer | None = None  # re-scores every VT verdict after the gate (None: none)

    def __post_init__(self):
        if not (isinstance(self.k, int) and 0 <= self.k <= MAX_K):
            raise InvalidFieldError("verdict_shift.k", f"must be an integer in 0..{MAX_K}", self.k)
        if self.k_row is None:
            object.__setattr__(self, "k_row", self.k)
        if not (isinstance(self.k_row, int) and 0 <= self.k_row <= self.k):
            raise InvalidFieldError("verdict_shift.k_row", f"must be an integer in 0..k ({self.k})", self.k_row)

    def blend(self, row: list[float], inc: list[float]) -> float:
        """The published probability: the map of mean(mean of ``row``, mean of ``inc``), each side the alarm window's
        answer first and then those of the earlier windows the stream still had."""
        return float(self.calibrator.transform([0.5 * (np.mean(row) + np.mean(inc))])[0])


def load(path: str | Path | None = None) -> VerdictShift:
    p = Path(path) if path else DEFAULT_PATH
    if not p.is_file():
        raise InvalidFieldError("stream.verdict_shift_path", f"must be a {NAME} JSON (python -m models.verdict_shift)", str(p))
    d = json.loads(p.read_text())
    gate = DefinitionGate.from_dict(d["gate"]) if d.get("gate") is not None else None
    vt = VTRescorer.from_dict(d["vt_rescorer"]) if d.get("vt_rescorer") is not None else None
    return VerdictShift(int(d.get("k", -1)), Calibrator.from_dict(d.get("calibration")), d.get("row"), d.get("k_row"), gate, vt)


def default_cache(n_records: int) -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "holmes-icu" / f"shift_features_{n_records}.npz"


def shift_features(records, shifts, progress: bool = False, cache: Path | None = None) -> dict[str, np.ndarray]:
    """{"batch@o", "inc@o"}: ``models.features`` of the window ending o s before each record's alarm, and
    ``models.incremental`` features of that window with the record streamed from its start in 1 s hops. Kept in
    ``cache`` (an .npz, reused while it holds the same records and shifts)."""
    names = [r.name for r in records]
    want = [f"{p}@{o}" for p in ("batch", "inc") for o in shifts]
    if cache is not None and Path(cache).is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["records"]) == names and all(k in z.files for k in want):
            return {k: z[k] for k in want}
    out = _shift_features(records, shifts, progress)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, records=np.array(names), **out)
    return out


def _shift_features(records, shifts, progress: bool) -> dict[str, np.ndarray]:
    from .features import extract_batch

    M = np.stack([r.mask for r in records])
    fs = records[0].fs_hz
    out = {f"batch@{o}": extract_batch(np.stack([alarm_window(r, offset_s=o) for r in records]), M, fs) for o in shifts}
    for end, inc, masks in stream_hops(records, 0.0, ALARM_S, progress=progress):
        o = int(round(ALARM_S - end))
        if o in shifts:
            out[f"inc@{o}"] = inc.features(masks)
    return out


def _fold_fit(X: dict, part: str, T: list, y: np.ndarray, folds: np.ndarray, k: int, shifts, seed: int) -> np.ndarray:
    """[len(shifts), fold size]: ``MODEL`` fitted on ``part``@0 of the other folds, scored on fold ``k`` at each shift."""
    from .feature_models import make_feature_model

    tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = make_feature_model(MODEL, seed=seed).fit(X[f"{part}@0"][tr], [T[i] for i in tr], y[tr])
        return np.stack([m.proba_from_features(X[f"{part}@{o}"][te], [T[i] for i in te]) for o in shifts])


def _oof(X: dict, T: list, y: np.ndarray, folds: np.ndarray, shifts, seed: int, jobs: int) -> dict[str, np.ndarray]:
    """{"batch", "inc"}: [len(shifts), R] out-of-fold probabilities of ``MODEL`` fitted on that part @0, at each shift."""
    from joblib import Parallel, delayed

    work = [(part, k) for part in ("batch", "inc") for k in np.unique(folds)]
    res = Parallel(n_jobs=jobs)(delayed(_fold_fit)(X, part, T, y, folds, k, shifts, seed) for part, k in work)
    out = {part: np.zeros((len(shifts), len(y))) for part in ("batch", "inc")}
    for (part, k), p in zip(work, res):
        out[part][:, folds == k] = p
    return out


def served_probabilities(records, shift: VerdictShift, plan, registry_dir, gate: bool = True, start_s: float = 0.0,
                         row: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What the verdict lane publishes for each record's alarm, computed in process: the plan row (``row``, default the
    one the shift was fitted on) on the windows ending 0..k_row s before the alarm, the incremental model on the record
    streamed as a bed from ``start_s`` on the windows ending 0..K s before it, averaged and mapped (``VerdictShift.blend``),
    then (``gate``) the shift's definition gate on the alarm window's batch features and its VT re-scorer on the alarm
    window's spectral readings. Returns (probabilities, gated)."""
    from holmes.compose.plan import row_probabilities

    from .incremental_model import stream_probabilities

    types = [r.alarm_type for r in records]

    def cut(o: int):  # the windows ending o s before the alarm, and their masks, as the consumer cuts them
        W = np.stack([alarm_window(r, offset_s=float(o)) for r in records]).astype(np.float32)
        return W, np.stack([r.mask for r in records]) & np.isfinite(W).any(axis=2)

    cuts = [cut(o) for o in range(shift.k_row + 1)]
    row_p = [row_probabilities(plan, row or shift.row or plan.floor().name, registry_dir, W, M, types) for W, M in cuts]
    ends = [ALARM_S - o for o in range(shift.k + 1)]
    inc = stream_probabilities(records, start_s, [{e: t for e in ends} for t in types])
    p = np.array([shift.blend([float(rp[i]) for rp in row_p], [inc[i][e] for e in ends if e in inc[i]]) for i in range(len(records))])
    if not gate or shift.gate is None:
        return p, np.zeros(len(records), dtype=bool)
    p, gated, _ = gate_and_rescore(shift.gate, shift.vt_rescorer, p, *cuts[0], types)
    return p, gated


def averaged(row: np.ndarray, inc: np.ndarray, K: int, k_row: int | None = None) -> np.ndarray:
    """mean(mean of ``row`` over shifts 0..``k_row``, mean of ``inc`` over shifts 0..K): [shifts, R] each, shift 0 first;
    ``k_row`` None: K on both sides."""
    return 0.5 * (row[: (K if k_row is None else k_row) + 1].mean(0) + inc[: K + 1].mean(0))


def candidates(row: np.ndarray, inc: np.ndarray, y: np.ndarray, T: list, folds: np.ndarray, k_row: int | None = None) -> dict[int, dict]:
    """Per K: the map fitted on all its out-of-fold blends (``map``), and the challenge score, AUROC and ECE of the blend
    calibrated on the other folds (cut at 1/6). ``k_row``: the row side's shifts fixed at 0..k_row (None: K, as the
    incremental side)."""
    from .metrics import auroc, summarize

    if k_row is not None and k_row >= row.shape[0]:
        raise InvalidFieldError("k_row", f"must be below the row side's shifts ({row.shape[0]})", k_row)
    out = {}
    for K in range(inc.shape[0] if k_row is not None else min(row.shape[0], inc.shape[0])):
        b = averaged(row, inc, K, k_row)
        p, _ = nested_calibrate(b, y, folds)
        out[K] = {"map": fit_on_oof(b, y, folds), "score": float(summarize(y, p, (p >= CUT).astype(int), list(T))["score"]),
                  "auroc": float(auroc(y, p)), "ece": float(ece(y, p)), "brier": float(np.mean((p - y) ** 2))}
    return out


SELECT_BY = ("score", "brier")


def best_k(cands: dict[int, dict], by: str = "score") -> int:
    """The K whose calibrated out-of-fold blend scores best at the cut (``by`` "score") or has the lowest Brier score
    (``by`` "brier": smooth in the probabilities, so less at the mercy of a few records near the cut); ties: the
    smaller K."""
    if by == "brier":
        return min(cands, key=lambda K: (round(cands[K]["brier"], 9), K))
    if by != "score":
        raise InvalidFieldError("select_by", f"must be one of {SELECT_BY}", by)
    return max(cands, key=lambda K: (round(cands[K]["score"], 6), -K))


def choose(row: np.ndarray, inc: np.ndarray, y: np.ndarray, T: list, folds: np.ndarray,
           k_row: int | None = None) -> tuple[int, Calibrator, dict]:
    """(K, map, out-of-fold figures per K) from calibrated probabilities ``row``/``inc`` [shifts, R] (shift 0 first);
    ``k_row``: the row side's shifts fixed at 0..k_row (None: K, as the incremental side)."""
    cands = candidates(row, inc, y, T, folds, k_row)
    k = best_k(cands)
    return k, cands[k]["map"], {K: {"score": round(c["score"], 3), "auroc": round(c["auroc"], 4), "ece": round(c["ece"], 4)}
                                for K, c in cands.items()}


def fit(data=None, out: str | Path = DEFAULT_PATH, plan_path: str | Path | None = None, seed: int = 0, progress: bool = True,
        jobs: int = 2, k_row: int | None = 0) -> Path:
    """Choose K and fit the map (``k_row``: the row side's K, 0 by default, None: the same K as the incremental side)."""
    from deploy.holmes_config import HolmesConfig
    from holmes.compose.plan import Plan

    from .incremental_model import load_calibrated

    t0 = time.perf_counter()
    records, _ = load_dataset(resolve_data_dir(data), progress=progress)
    records = [r for r in records if r.label is not None]
    if len(records) < 50:
        raise InvalidFieldError("data", f"must hold >= 50 labelled records to fit the {NAME}", len(records))
    cfg = HolmesConfig.load(None, {})
    plan = Plan.load(plan_path or cfg.resolved(cfg.service.plan_path))
    floor = plan.floor()
    if list(floor.members) != [MODEL]:
        raise InvalidFieldError("plan", f"its verdict floor row must be {MODEL} alone (the model the shift is fitted on)",
                                f"{floor.name}: {list(floor.members)}")
    row_cal = Calibrator.from_dict(floor.calibration)
    _, inc_cal, _ = load_calibrated()
    shifts = tuple(range(MAX_K + 1))
    X = shift_features(records, shifts, progress, cache=default_cache(len(records)))
    T = [r.alarm_type for r in records]
    y = np.array([int(r.label) for r in records])
    folds = cv_folds([RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records], 5, seed=seed)
    oof = _oof(X, T, y, folds, shifts, seed, jobs)
    row = np.stack([row_cal.transform(p) for p in oof["batch"]])
    inc = np.stack([inc_cal.transform(p) for p in oof["inc"]])
    k, cal, figures = choose(row, inc, y, T, folds, k_row)
    p_oof, _ = nested_calibrate(averaged(row, inc, k, k_row), y, folds)  # the K's blend, calibrated on the other folds
    gate, p_gated = fit_served_gate(p_oof, y, T, X["batch@0"])  # the definition gate and its second gate
    vt = [i for i, t in enumerate(T) if t == VT]
    R = np.full((len(records), 2), np.nan)
    R[vt] = vt_readings(np.stack([alarm_window(records[i]) for i in vt]))
    vt_rescorer = fit_vt_rescorer(p_gated, y, T, R)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prof = {"name": NAME, "k": k, "k_row": k if k_row is None else min(k_row, k), "calibration": cal.to_dict(),
            "row": floor.name, "row_members": list(floor.members), "gate": gate.to_dict(), "vt_rescorer": vt_rescorer.to_dict(),
            "records": len(records), "fold_seed": seed, "fit_s": round(time.perf_counter() - t0, 1),
            "out_of_fold_by_k": {str(a): f for a, f in figures.items()},
            "note": "out-of-fold figures of each K with its map fitted on the other folds: the selection's own figures, not a "
                    "nested estimate (bench/shift_nested.py gives that)"}
    out.write_text(json.dumps(prof, indent=1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--plan", help="plan JSON whose verdict floor row the map is fitted on (default: the configured plan)")
    ap.add_argument("--out", default=str(DEFAULT_PATH))
    ap.add_argument("--jobs", type=int, default=2, help="fits in parallel (10 in all: 5 folds x batch / incremental)")
    ap.add_argument("--row-k", default="0", help="earlier windows the plan row averages: 0 (default: the service scores the alarm "
                    "window alone) or 'same' (the incremental side's K)")
    args = ap.parse_args()
    if args.row_k not in ("0", "same"):
        raise InvalidFieldError("--row-k", "must be 0 or same", args.row_k)
    out = fit(args.data, args.out, args.plan, jobs=args.jobs, k_row=0 if args.row_k == "0" else None)
    prof = json.loads(out.read_text())
    vt = prof["vt_rescorer"]
    print(f"{NAME}: K = {prof['k']}, row K = {prof['k_row']} ({prof['calibration']['method']} map), gate limits {prof['gate']['limits']}, "
          f"VT re-scorer intercept {vt['intercept']:+.2f}, weights {dict(zip(vt['inputs'], (round(c, 2) for c in vt['coef'])))}, "
          f"{prof['records']} records, {prof['fit_s']:.0f} s; "
          f"out-of-fold by K: " + ", ".join(f"{a}: {f['score']:.2f}" for a, f in prof["out_of_fold_by_k"].items()) + f"; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
