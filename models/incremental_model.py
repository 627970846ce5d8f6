"""The routine model on incremental features: ``features-typed`` fitted on ``models.incremental`` features.

A model must be fitted on the feature definitions it is served with (``models.incremental`` changes the beat,
spectral and amplitude definitions). ``fit`` streams every labelled record from its start to its alarm as one
bed (all records in one ``IncrementalFeatures``, 1 s hops), takes the features of the window ending at the
alarm, fits the model on all of them (its threshold chosen on inner folds, as every feature model) and its
out-of-fold predictions under the registry's record-grouped folds (``models.data.cv_folds``, seed 0), from
which the served calibration map is fitted (``models.calibration.fit_on_oof``).

    .venv/bin/python -m models.incremental_model [--data DIR] [--out artifacts/incremental]

Writes ``<out>/features-typed-inc.joblib`` (the member) and ``.json`` (out-of-fold predictions, their score,
the threshold, the records). ``load(dir)`` returns (member, profile).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from .data import ALARM_S, RecordInfo, cv_folds, load_dataset, resolve_data_dir
from .errors import InvalidFieldError

NAME = "features-typed-inc"
MODEL = "features-typed"
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "artifacts" / "incremental"
FEATURE_SET = "models.incremental v1"
WINDOW_S = 16.0


def stream_hops(records, start_s: float, end_s: float, progress: bool = False):
    """Every record streamed as a bed of one ``IncrementalFeatures`` from record second ``start_s`` to ``end_s`` in 1 s
    hops (absent channels NaN): yields (end of the hop in record seconds, the state after it, the channel masks)."""
    from .incremental import IncrementalFeatures

    fs = records[0].fs_hz
    S = np.stack([r.signals[:, int(start_s * fs) : int(round(end_s * fs))] for r in records]).astype(np.float64)
    M = np.stack([r.mask for r in records])
    S[~M] = np.nan
    inc = IncrementalFeatures(len(records), fs)
    hops = range(S.shape[2] // fs)
    if progress:
        from tqdm import tqdm

        hops = tqdm(hops, desc="streaming the records", unit="s")
    for h in hops:
        inc.push(S[:, :, h * fs : (h + 1) * fs])
        yield round(start_s + h + 1, 3), inc, M


def alarm_features(records, progress: bool = False) -> np.ndarray:
    """[R, N_FEATURES] incremental features of the window ending at each record's alarm, each record streamed as a
    bed from its start in 1 s hops."""
    for _, inc, M in stream_hops(records, 0.0, ALARM_S, progress):
        pass
    return inc.features(M)


def fit(data=None, out: str | Path = DEFAULT_DIR, seed: int = 0, progress: bool = True) -> Path:
    from .feature_models import make_feature_model
    from .metrics import auroc, summarize

    t0 = time.perf_counter()
    records, _ = load_dataset(resolve_data_dir(data), progress=progress)
    records = [r for r in records if r.label is not None]
    if len(records) < 50:
        raise InvalidFieldError("data", "must hold >= 50 labelled records to fit the incremental model", len(records))
    X = alarm_features(records, progress)
    T = [r.alarm_type for r in records]
    y = np.array([int(r.label) for r in records])
    folds = cv_folds([RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records], 5, seed=seed)
    oof = np.zeros(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(5):
            tr, te = folds != k, folds == k
            m = make_feature_model(MODEL, seed=seed).fit(X[tr], [T[i] for i in np.flatnonzero(tr)], y[tr])
            oof[te] = m.proba_from_features(X[te], [T[i] for i in np.flatnonzero(te)])
        member = make_feature_model(MODEL, seed=seed).fit(X, T, y)
    member.name = NAME
    sm = summarize(y, oof, (oof >= member.threshold_).astype(int), T)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    import joblib

    joblib.dump(member, out / f"{NAME}.joblib", compress=("lzma", 3))
    profile = {"name": NAME, "model": MODEL, "feature_set": FEATURE_SET, "threshold": float(member.threshold_),
               "records": len(records), "fit_s": round(time.perf_counter() - t0, 1),
               "cv": {"score": round(float(sm["score"]), 3), "auroc": round(float(auroc(y, oof)), 4), "folds": 5, "fold_seed": seed,
                      "note": "out-of-fold predictions at the full model's threshold: for the calibration map, not a nested "
                              "estimate (bench/incremental_features.py gives the nested one)"},
               "oof": {"records": [r.name for r in records], "prob": [round(float(p), 6) for p in oof], "label": y.tolist(),
                       "fold": folds.tolist()}}
    (out / f"{NAME}.json").write_text(json.dumps(profile, indent=1))
    return out


def load(path: str | Path | None = None):
    """(member, profile) of the fitted incremental model in folder ``path`` (default ``artifacts/incremental``)."""
    import joblib

    d = Path(path) if path else DEFAULT_DIR
    weights, meta = d / f"{NAME}.joblib", d / f"{NAME}.json"
    if not weights.is_file() or not meta.is_file():
        raise InvalidFieldError("stream.incremental_dir", f"must hold {NAME}.joblib and .json (python -m models.incremental_model)", str(d))
    return joblib.load(weights), json.loads(meta.read_text())


def load_calibrated(path: str | Path | None = None):
    """(member, calibration map, profile): the map it is served with, fitted on its out-of-fold predictions."""
    from .calibration import fit_on_oof

    member, profile = load(path)
    oof = profile["oof"]
    return member, fit_on_oof(oof["prob"], oof["label"], oof["fold"]), profile


def stream_probabilities(records, start_s: float, wanted: list[dict[float, str]], path=None) -> list[dict[float, float]]:
    """What the incremental scorer publishes for each record streamed as a bed from record second ``start_s`` in 1 s
    hops: for record i, {window end s: calibrated probability} at the ends in ``wanted[i]`` ({end: alarm type}),
    windows of WINDOW_S seconds. The offline side of the end-to-end checks (tests/demo, bench/serve_beds.py)."""
    if len(wanted) != len(records):
        raise InvalidFieldError("wanted", f"must hold one {{end: alarm type}} per record ({len(records)})", len(wanted))
    member, cal, _ = load_calibrated(path)
    out: list[dict[float, float]] = [{} for _ in records]
    last = max((max(w) for w in wanted if w), default=start_s)
    for end, inc, M in stream_hops(records, start_s, last):
        rows = [i for i, w in enumerate(wanted) if end in w]
        if not rows or end - start_s < WINDOW_S:
            continue
        p = cal.transform(member.proba_from_features(inc.features(M[rows], beds=rows), [wanted[i][end] for i in rows]))
        for i, v in zip(rows, p):
            out[i][end] = float(v)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--out", default=str(DEFAULT_DIR))
    args = ap.parse_args()
    out = fit(args.data, args.out)
    prof = json.loads((out / f"{NAME}.json").read_text())
    print(f"{NAME}: {prof['records']} records, out-of-fold score {prof['cv']['score']:.2f}, AUROC {prof['cv']['auroc']:.3f}, "
          f"threshold {prof['threshold']:.3f}, {prof['fit_s']:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
