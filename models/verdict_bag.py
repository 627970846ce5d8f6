"""The verdict as a bag: the mean of whole verdict pipelines, each fitted on a different 80 % of the records.

A pipeline is the served verdict procedure (``models.verdict_shift``, step for step as ``bench/shift_nested.py`` and
``bench/vt_spectral.py`` fit it inside each outer fold): features-typed on the alarm window's batch features (the row
side) and on the patient's incremental features (the incremental side, averaged over the windows ending 0..K s before
the alarm), K and the calibration map of the mean chosen on 4 inner folds, then the alarm definitions' gate
(``models.definition_gate``) and the VT re-scorer (``models.vt_spectral``) fitted on the inner out-of-fold verdicts.
Each side is features-typed's own calibrated probability (the nested figures were measured so; the single served
pipeline puts each side through its row's or model's map as well, within 0.2 of it).

The bag has one member per training part of the registry's 5 folds (``models.data.cv_folds``, seed 0: each 80 % of
the records, two of them sharing 60 %). Its verdict is the mean of the members' published probabilities, "true" at
>= 1/6.

Why (``bench/verdict_bag.py``, nested: each record's verdicts from pipelines of 10 fold seeds that never saw it): a bag
of 5 scores 84.37 +/- 0.47 over the 252 sets of 5 of the 10 fold seeds, +1.15 +/- 0.56 over the mean of its members
(better in 246 of 252 sets); the disjoint bags of fold seeds 0..4 and 5..9: 84.91 and 84.91 against 83.23 and 83.21,
+1.68 (5-95 % over record draws +0.63..+2.78) and +1.70 (+0.71..+2.74); AUROC 0.964 / 0.965, ECE 0.031 / 0.033. These
include the definition gate's second gate (``models.definition_gate.fit_served``), whose reading was picked after
looking at the bradycardia alarms' labels; before it the bag read 83.52 +/- 0.49, and with that reading itself
chosen on inner folds among seven (``bench/brady_reading_nested.py``) 84.18 +/- 0.47. Each member refitted with it
reproduces the nested fold-seed-0 outer verdicts on its held-out fold exactly (501 of 501 records, max difference 0.0).

    .venv/bin/python -m models.verdict_bag [--data DIR] [--out artifacts/verdict-bag] [--jobs 2]

writes ``bag.json`` (per member: its K, map, gate, VT re-scorer, the records it was fitted on, the checksum of its
models' file)
and ``member-<j>.joblib`` (the two fitted models, compressed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .calibration import Calibrator, nested_calibrate
from .data import ALARM_S, RecordInfo, alarm_window, cv_folds, load_dataset, resolve_data_dir
from .definition_gate import DefinitionGate, MARGINS
from .definition_gate import fit_served as fit_served_gate
from .errors import InvalidFieldError
from .verdict_shift import CUT, MAX_K, VerdictShift, averaged, best_k, candidates, default_cache, shift_features
from .vt_spectral import VT, VTRescorer, gate_and_rescore, vt_alarm_readings
from .vt_spectral import fit as fit_vt_rescorer
from .vt_spectral import readings as vt_readings

NAME = "verdict-bag"
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "artifacts" / NAME
FOLDS, INNER, SEED = 5, 4, 0
SHIFTS = tuple(range(MAX_K + 1))


def _est_fit(X: np.ndarray, T: list, y: np.ndarray, groups: np.ndarray):
    """features-typed's estimator (typed heads over the soft vote, seed 0) on feature rows ``X``."""
    from .feature_models import design_matrix
    from .typed_heads import TypedHeads

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TypedHeads(base="vote", seed=0).fit(design_matrix(X, list(T)), y, groups=groups)


def _est_proba(est, X: np.ndarray, T: list) -> np.ndarray:
    from .feature_models import design_matrix

    from .fast_predict import fast_proba

    if len(X) == 0:
        return np.zeros(0)
    with warnings.catch_warnings():  # the same values without scikit-learn's per-call checks and per-tree dispatch
        warnings.simplefilter("ignore")
        return fast_proba(est, design_matrix(np.asarray(X, dtype=np.float64), list(T)))[:, 1]


@dataclass
class BagMember:
    """One pipeline: the row side's and the incremental side's models and the shift (K, map, gate, VT re-scorer)."""

    row: object
    inc: object
    shift: VerdictShift
    records: int = 0
    record_names: tuple = ()  # the records it was fitted on (holmes evaluate says which scored records are among them)

    def probabilities(self, Xb, inc_rows, alarm_types, R_vt, windows, masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(published probabilities, gated, re-scored) of alarm windows: ``Xb`` their batch features, ``inc_rows`` per
        window [m, d] its incremental features (the window's own first, then the earlier windows, newest first),
        ``R_vt`` the VT readings (``models.vt_spectral.readings``; NaN off VT)."""
        types = list(alarm_types)
        row = _est_proba(self.row, Xb, types)
        k = self.shift.k
        rows = [np.asarray(r)[: k + 1] for r in inc_rows]
        flat = np.vstack(rows)
        inc = _est_proba(self.inc, flat, [t for r, t in zip(rows, types) for _ in range(len(r))])
        at = np.cumsum([0] + [len(r) for r in rows])
        p = np.array([self.shift.blend([row[i]], list(inc[at[i]:at[i + 1]])) for i in range(len(types))])
        return gate_and_rescore(self.shift.gate, self.shift.vt_rescorer, p, windows, masks, types, Xb, R_vt)


@dataclass
class VerdictBag:
    members: list[BagMember]
    path: str | None = None

    def __post_init__(self):
        if not self.members:
            raise InvalidFieldError("verdict_bag.members", "must hold at least one pipeline", 0)

    cost_fixed_ms: float = 0.0  # ``warm`` measures the cost of a call: fixed + per window
    cost_per_window_ms: float = 0.0

    def warm(self) -> None:
        """``_warm`` once per bag (a bag read once serves every lane of the process)."""
        if self.cost_fixed_ms > 0:
            return
        self._warm()

    def _warm(self) -> None:
        """One verdict per alarm type on rows of zeros, so each member's forests are flattened for ``models.fast_forest``
        now (~0.5 s for the 5 members), not on the first alarm; then the cost of a call of 1 and of 40 windows (median
        of 3), kept as ``cost_fixed_ms`` + ``cost_per_window_ms`` per window (``cost_ms``)."""
        import time

        from .data import ALARM_TYPES, FS_HZ
        from .features import N_FEATURES

        def call(n: int) -> float:
            types = [ALARM_TYPES[i % len(ALARM_TYPES)] for i in range(n)]
            t0 = time.perf_counter()
            self.probabilities(np.zeros((n, N_FEATURES)), [np.zeros((self.max_k + 1, N_FEATURES))] * n, types,
                               np.zeros((n, 5, 16 * FS_HZ), dtype=np.float32), np.ones((n, 5), dtype=bool))
            return (time.perf_counter() - t0) * 1e3

        call(len(ALARM_TYPES))
        one, many = float(np.median([call(1) for _ in range(3)])), float(np.median([call(40) for _ in range(3)]))
        self.cost_fixed_ms, self.cost_per_window_ms = one, max(many - one, 0.0) / 39

    def cost_ms(self, n: int) -> float:
        """The cost of a call of ``n`` windows as ``warm`` measured it (0 before)."""
        return self.cost_fixed_ms + self.cost_per_window_ms * n

    @property
    def max_k(self) -> int:
        """The most earlier windows any member's incremental side averages."""
        return max(m.shift.k for m in self.members)

    def probabilities(self, Xb, inc_rows, alarm_types, windows, masks, vt_readings=None) -> tuple[np.ndarray, dict]:
        """(the bag's published probability per alarm window: the members' mean, and per member its probabilities,
        gated and re-scored [members, n]). ``Xb``: the windows' batch features; ``inc_rows``: per window its incremental
        features, its own first and then the earlier windows' (newest first, at least its own); ``vt_readings``: the
        windows' ``models.vt_spectral.vt_alarm_readings`` where the caller has them."""
        types = list(alarm_types)
        if len(inc_rows) != len(types) or any(len(r) == 0 for r in inc_rows):
            raise InvalidFieldError("inc_rows", "must give each alarm window at least its own incremental features",
                                    [len(r) for r in inc_rows])
        R = vt_alarm_readings(windows, masks, types) if vt_readings is None else vt_readings  # once for every member
        parts = [m.probabilities(Xb, inc_rows, types, R, windows, masks) for m in self.members]
        P = np.stack([p for p, _, _ in parts])
        return P.mean(0), {"members": P, "gated": np.stack([g for _, g, _ in parts]), "rescored": np.stack([r for _, _, r in parts])}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_LOADED: dict = {}  # (folder, bag.json's and the members' checksums) -> the bag read from them (read-only models)


def load(path: str | Path | None = None) -> VerdictBag:
    """The bag in folder ``path`` (default ``artifacts/verdict-bag``); a missing, altered or malformed file is a typed
    error naming it. The files are checked on every call; models already read from the same files are not read again."""
    import joblib

    d = Path(path) if path else DEFAULT_DIR
    f = d / "bag.json"
    if not f.is_file():
        raise InvalidFieldError("stream.verdict_bag_path", f"must be a folder holding the {NAME}'s bag.json (python -m models.verdict_bag)", str(d))
    try:
        spec = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise InvalidFieldError("verdict_bag", f"bag.json must be JSON ({e.msg} at line {e.lineno})", str(f)) from None
    if not isinstance(spec, dict) or spec.get("name") != NAME or not isinstance(spec.get("members"), list):
        raise InvalidFieldError("verdict_bag", f"bag.json must be a mapping named {NAME!r} with a list of members", str(f))
    files = []
    for j, m in enumerate(spec["members"]):
        try:
            wf = d / m["file"]
            want = m["sha256"]
            m["shift"]
        except (KeyError, TypeError):
            raise InvalidFieldError(f"verdict_bag.members[{j}]", "must name its file, sha256 and shift", m) from None
        if not wf.is_file():
            raise InvalidFieldError(f"verdict_bag.members[{j}].file", "must exist", str(wf))
        if _sha(wf) != want:
            raise InvalidFieldError(f"verdict_bag.members[{j}].sha256", "must match the file (altered or truncated)", str(wf))
        files.append(wf)
    key = (str(d.resolve()), _sha(f))
    if key in _LOADED:
        return _LOADED[key]
    members = []
    for j, (m, wf) in enumerate(zip(spec["members"], files)):
        field = f"verdict_bag.members[{j}]"
        try:
            shift, models = m["shift"], joblib.load(wf)
            gate = DefinitionGate.from_dict(shift["gate"]) if shift.get("gate") is not None else None
            vt = VTRescorer.from_dict(shift["vt_rescorer"]) if shift.get("vt_rescorer") is not None else None
            members.append(BagMember(models["row"], models["inc"], VerdictShift(int(shift.get("k", -1)), Calibrator.from_dict(shift.get("calibration")),
                                                                                 None, 0, gate, vt),
                                     int(m.get("records", 0)), tuple(m.get("record_names", ()))))
        except InvalidFieldError as e:
            raise InvalidFieldError(f"{field}.{e.field}", e.rule, e.value, e.options) from None
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise InvalidFieldError(field, "must hold a shift mapping (k, calibration, gate, vt_rescorer) and a file of the "
                                    "row and incremental models", f"{type(e).__name__}: {e}") from None
    _LOADED[key] = VerdictBag(members, str(d))
    return _LOADED[key]


def _task(X: dict, T: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray, part: str, shifts) -> tuple:
    """One fit: features-typed on ``part``@0 of rows ``tr`` (groups: the record), scored on rows ``te`` at ``shifts``
    (``te`` None: the fitted estimator itself)."""
    est = _est_fit(X[f"{part}@0"][tr], list(T[tr]), y[tr], tr)
    if te is None:
        return est
    return np.stack([_est_proba(est, X[f"{part}@{o}"][te], list(T[te])) for o in shifts])


def fit_member(X: dict, T: np.ndarray, y: np.ndarray, infos: list, tr: np.ndarray, R_vt: np.ndarray,
               jobs: int = 2) -> tuple[BagMember, dict]:
    """The pipeline on records ``tr`` (as one outer fold of ``bench/shift_nested.py`` fits it): the inner out-of-fold
    probabilities of both sides, K and the map, the gate, the VT re-scorer, and the two models on all of ``tr``."""
    from joblib import Parallel, delayed

    inner = cv_folds([infos[i] for i in tr], INNER, seed=SEED)
    work = [("batch", (0,), k) for k in range(INNER)] + [("inc", SHIFTS, k) for k in range(INNER)] + [("batch", None, -1), ("inc", None, -1)]
    res = Parallel(n_jobs=jobs)(delayed(_task)(X, T, y, tr[inner != k] if k >= 0 else tr, tr[inner == k] if k >= 0 else None, part, shifts)
                                for part, shifts, k in work)
    row, inc = np.zeros((1, len(tr))), np.zeros((len(SHIFTS), len(tr)))
    for (part, _, k), p in zip(work, res):
        if k >= 0:
            (row if part == "batch" else inc)[:, inner == k] = p
    yt, Tt = y[tr], list(T[tr])
    cands = candidates(row, inc, yt, Tt, inner, 0)
    K = best_k(cands)
    p_inner, _ = nested_calibrate(averaged(row, inc, K, 0), yt, inner)
    gate, p_gated = fit_served_gate(p_inner, yt, Tt, X["batch@0"][tr], MARGINS)  # the definition gate and its second gate
    vt = fit_vt_rescorer(p_gated, yt, Tt, R_vt[tr])
    shift = VerdictShift(K, cands[K]["map"], None, 0, gate, vt)
    figures = {"k": K, "inner_score_by_k": {str(a): round(c["score"], 3) for a, c in cands.items()}}
    return BagMember(res[-2], res[-1], shift, len(tr)), figures


def fit(data=None, out: str | Path = DEFAULT_DIR, jobs: int = 2, progress: bool = True) -> Path:
    import joblib

    t0 = time.perf_counter()
    records, _ = load_dataset(resolve_data_dir(data), progress=progress)
    records = [r for r in records if r.label is not None]
    if len(records) < 50:
        raise InvalidFieldError("data", f"must hold >= 50 labelled records to fit the {NAME}", len(records))
    X = shift_features(records, SHIFTS, progress, cache=default_cache(len(records)))
    T = np.array([r.alarm_type for r in records])
    y = np.array([int(r.label) for r in records])
    infos = [RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records]
    folds = cv_folds(infos, FOLDS, seed=SEED)
    R = np.full((len(records), 2), np.nan)
    vt = np.flatnonzero(T == VT)
    R[vt] = vt_readings(np.stack([alarm_window(records[i]) for i in vt]))
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    spec = {"name": NAME, "records": len(records), "fold_seed": SEED, "folds": FOLDS, "inner_folds": INNER, "cut": CUT,
            "members": [], "note": "each member: the served verdict procedure fitted on the records outside one of the "
                                   "registry's folds (models.data.cv_folds, seed 0); the bag publishes their mean"}
    for j in range(FOLDS):
        tr = np.flatnonzero(folds != j)
        member, figures = fit_member(X, T, y, infos, tr, R, jobs)
        wf = d / f"member-{j}.joblib"
        joblib.dump({"row": member.row, "inc": member.inc}, wf, compress=("lzma", 3))  # as the registry packs forests
        s = member.shift
        spec["members"].append({"file": wf.name, "sha256": _sha(wf), "records": len(tr), "held_out_fold": j,
                                "record_names": [records[i].name for i in tr],
                                "shift": {"k": s.k, "k_row": 0, "calibration": s.calibrator.to_dict(), "gate": s.gate.to_dict(),
                                          "vt_rescorer": s.vt_rescorer.to_dict()}, **figures})
        if progress:
            print(f"member {j}: {len(tr)} records, K = {s.k} ({s.calibrator.method}), gate {s.gate.limits()}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    spec["fit_s"] = round(time.perf_counter() - t0, 1)
    (d / "bag.json").write_text(json.dumps(spec, indent=1))
    return d


def alarm_inputs(records, max_k: int, start_s: float = 0.0, ends=None) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """What the verdict lane holds at each record's alarm window (ending at ``ends[i]`` s, default the alarm's), computed
    in process: its batch features, its incremental features with those of the windows ending 1..``max_k`` s before it
    (the record streamed as a bed from ``start_s`` in 1 s hops; only whole windows, as the consumer cuts them), the
    window and its mask."""
    from .data import window
    from .features import extract_batch
    from .incremental_model import WINDOW_S, stream_hops

    ends = [ALARM_S] * len(records) if ends is None else [float(e) for e in ends]
    W = np.stack([window(r, e, WINDOW_S) for r, e in zip(records, ends)]).astype(np.float32)
    M = np.stack([r.mask for r in records]) & np.isfinite(W).any(axis=2)
    Xb = extract_batch(W, M, records[0].fs_hz)
    want = [{round(e - o, 3): o for o in range(max_k + 1)} for e in ends]
    rows: list[dict] = [{} for _ in records]
    for end, inc, masks in stream_hops(records, start_s, max(ends)):
        hit = [i for i, w in enumerate(want) if end in w]
        if hit and end - start_s >= WINDOW_S - 1e-9:
            F = inc.features(masks[hit], beds=hit)
            for i, f in zip(hit, F):
                rows[i][want[i][end]] = f
    if any(0 not in r for r in rows):
        raise InvalidFieldError("ends", f"must each end a whole window after start_s ({start_s:g} s), on its 1 s hops", ends)
    inc_rows = [np.stack([r[o] for o in range(max_k + 1) if o in r and all(q in r for q in range(o))]) for r in rows]
    return Xb, inc_rows, W, M


def served_probabilities(records, bag: VerdictBag, start_s: float = 0.0, ends=None, alarm_types=None) -> tuple[np.ndarray, dict]:
    """What the verdict lane publishes with the bag for each record's alarm window (``alarm_inputs``), in process;
    ``alarm_types``: the alarms' types where they are not the records' own."""
    Xb, inc_rows, W, M = alarm_inputs(records, bag.max_k, start_s, ends)
    return bag.probabilities(Xb, inc_rows, list(alarm_types) if alarm_types is not None else [r.alarm_type for r in records], W, M)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--out", default=str(DEFAULT_DIR))
    ap.add_argument("--jobs", type=int, default=2, help="fits in parallel (10 per member)")
    args = ap.parse_args()
    d = fit(args.data, args.out, args.jobs)
    spec = json.loads((d / "bag.json").read_text())
    print(f"{NAME}: {len(spec['members'])} members, K {[m['shift']['k'] for m in spec['members']]}, {spec['records']} records, "
          f"{spec['fit_s']:.0f} s; wrote {d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
