"""Ideas for the served verdict beyond mean(batch, inc), each scored against it on the same nested, record-grouped folds.

    .venv/bin/python bench/verdict_ideas.py [--data DIR] [--seeds 5] [--jobs 2]

The served verdict (``streams.verdict_blend.VerdictBlend``) is the mean of features-typed on the alarm window's
batch features (the plan row) and on the streamed incremental features (``features-typed-inc``). Its weakest alarm
types are ventricular tachycardia and bradycardia. Tried here, every one fitted per outer training part of 5 folds per
fold seed (``models.data.cv_folds``), every rule cut at a calibrated 1/6, nothing chosen on a scored record:

- ``specialists``: per type (VT, bradycardia) an L2 logistic regression on a physiology-chosen handful of the 99
  features, averaged into the blend as a third vote for that type's records;
- ``morphology``: 22 beat-morphology features of the window (beats correlated with the window's own first-half
  template, 1-5 Hz power share, envelope changes, a run of fast beats unlike the template, pulse amplitude dips),
  appended to the batch features (``batch+morph``);
- ``context``: 20 features of the window against the same patient's 20 s before it (beats correlated with that
  baseline's template, rate, envelope and pulse amplitude ratios) appended to the batch features (``batch+context``);
- ``cnn zoo``: the registry's 24 CNNs' mean (their out-of-fold predictions, calibrated on nested folds) mixed in with
  weight w;
- ``test-time shift``: the models fitted on the alarm window, also scored on the windows ending 1..K s before the
  alarm and averaged (the consumer has those windows' probabilities for free);
- ``train-time shift``: fitted on the alarm window and the windows 1 (and 2) s before it, grouped by record
  (``TypedHeads.fit(..., groups=)``: one record's windows share an inner calibration fold), scored on the alarm window.

Feature matrices are cached in ~/.cache/holmes-icu/verdict_ideas_<n>.npz. Writes bench/results/verdict_ideas.json
(per rule: score, AUROC, ECE, TPR, TNR, per type, mean and spread over fold seeds, paired difference to the served
blend) and verdict_ideas.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from feature_sets import _row, paired_bars, print_rules, summarize_rules  # noqa: E402  (the same figures and summary as the feature-set bench)
from models.beats import ecg_peaks_rows, fill_nan, filtered  # noqa: E402
from models.data import ALARM_S, ALARM_TYPES, RecordInfo, alarm_window, cv_folds, load_dataset, resolve_data_dir, window  # noqa: E402
from models.features import FEATURE_NAMES  # noqa: E402
from models.verdict_shift import averaged  # noqa: E402

FS = 250
HALF = int(0.1 * FS)  # a beat: +-100 ms around its QRS
SHIFTS = (0, 1, 2, 3, 4)  # s before the alarm at which each window ends
INC_SHIFTS = tuple(range(9))  # the incremental side's longer reach (bench/shift_nested.py)
WIDE = signal.butter(2, [1.0, 40.0], btype="bandpass", fs=FS, output="sos")
SPECIALIST_FEATURES = {
    "Bradycardia": ["cons_min_hr5_bpm", "cons_max_gap_s", "ECG1_min_hr5_bpm", "ECG2_min_hr5_bpm", "ABP_min_hr5_bpm",
                    "PPG_min_hr5_bpm", "n_good_sources"],
    "Ventricular_Tachycardia": ["ECG1_spec_conc", "ECG2_spec_conc", "ECG1_low_high_ratio", "ECG2_low_high_ratio", "ABP_rr_cv",
                                "ABP_last_rr_cv", "PPG_rr_cv", "PPG_last_rr_cv", "ABP_amp_drop_last4s", "PPG_amp_drop_last4s",
                                "cons_max_hr5_bpm", "ECG1_max_hr5_bpm", "ECG2_max_hr5_bpm", "ECG1_qrs_width_s", "ECG2_qrs_width_s"],
}


# -- candidate features ---------------------------------------------------------------------------------------------
def _lf_share(x: np.ndarray) -> float:
    f, p = signal.periodogram(x, FS)
    return float(p[(f >= 1) & (f <= 5)].sum() / (p[(f >= 1) & (f <= 40)].sum() + 1e-12))


def _beats(x: np.ndarray):
    """(wide-band signal, QRS sample indices, QRS widths s, mean-removed beats [n, 2*HALF]) of one NaN-filled lead."""
    wide = signal.sosfiltfilt(WIDE, x)
    t, w = ecg_peaks_rows(filtered(x[None], "ecg", FS), FS)[0]
    idx = (t * FS).astype(int)
    keep = (idx >= HALF) & (idx < len(x) - HALF)
    idx, w = idx[keep], w[keep]
    beats = np.stack([wide[i - HALF:i + HALF] for i in idx]) if len(idx) else np.empty((0, 2 * HALF))
    return wide, idx, w, beats - beats.mean(1, keepdims=True)


def _corr(beats: np.ndarray, tmpl: np.ndarray) -> np.ndarray:
    return beats @ tmpl / (np.linalg.norm(beats, axis=1) * np.linalg.norm(tmpl) + 1e-12)


def _run(flags) -> int:
    run = best = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def _block_amps(bp: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.array([np.percentile(bp[s:s + 2 * FS], 95) - np.percentile(bp[s:s + 2 * FS], 5) for s in range(a, b - 2 * FS + 1, FS)])


MORPH_NAMES = [f"{lead}_{n}" for lead in ("ECG1", "ECG2") for n in (
    "corr_last_med", "corr_last_min3", "low_corr_frac", "low_corr_run", "lf_share_last_max", "lf_share_first", "hf_frac",
    "env_ratio_last", "beat_energy_ratio")] + ["lead_env_corr_last", "pulse_amp_min2_ratio", "pulse_std_min2_ratio", "run_fast_unlike"]


def morphology(record) -> list[float]:
    """``MORPH_NAMES`` of the alarm window: the last 8 s against the first 8 s of the same window."""
    W, M = alarm_window(record).astype(np.float64), record.mask
    n = W.shape[1]
    half = n // 2
    out, envs, fast = [], [], 0
    for s in (0, 1):
        if not M[s] or not np.isfinite(W[s]).any():
            out += [np.nan] * 9
            continue
        x = fill_nan(W[s][None])[0][0]
        wide, idx, _, beats = _beats(x)
        lf = np.array([_lf_share(wide[a:a + 2 * FS]) for a in range(0, n - 2 * FS + 1, FS)])
        f, p = signal.periodogram(x - x.mean(), FS)
        hf = float(p[f > 40].sum() / (p[f > 0.5].sum() + 1e-12))
        env = np.abs(signal.hilbert(wide))
        envs.append(env)
        lf_part = [float(lf[len(lf) // 2:].max()), float(np.median(lf[:len(lf) // 2])), hf,
                   float(np.median(env[half:]) / (np.median(env[:half]) + 1e-9))]
        if len(idx) < 4:
            out += [np.nan] * 4 + lf_part + [np.nan]
            continue
        first = idx < half
        corr = _corr(beats, np.median(beats[first] if first.sum() >= 3 else beats, axis=0))
        last = corr[~first] if (~first).any() else corr[-1:]
        energy = (beats ** 2).sum(1)
        ratio = float(np.median(energy[~first]) / (np.median(energy[first]) + 1e-9)) if first.any() and (~first).any() else np.nan
        out += [float(np.median(last)), float(np.sort(last)[:3].mean()), float((last < 0.7).mean()), float(_run(last < 0.7))] + lf_part + [ratio]
        t = idx / FS
        fast = max(fast, _run([t[k] >= half / FS and t[k] - t[k - 1] < 0.6 and corr[k] < 0.7 for k in range(1, len(t))]))
    out.append(float(np.corrcoef(envs[0][half:], envs[1][half:])[0, 1]) if len(envs) == 2 else np.nan)
    amp, sd = [], []
    for s in (2, 3):
        if M[s] and np.isfinite(W[s]).any():
            bp = filtered(fill_nan(W[s][None])[0], "pulse", FS)[0]
            a = _block_amps(bp, 0, n)
            d = np.array([bp[i:i + 2 * FS].std() for i in range(0, n - 2 * FS + 1, FS)])
            h = len(a) // 2
            amp.append(a[h:].min() / (np.median(a[:h]) + 1e-9))
            sd.append(d[h:].min() / (np.median(d[:h]) + 1e-9))
    out += [float(min(amp)) if amp else np.nan, float(min(sd)) if sd else np.nan, float(fast)]
    return out


CONTEXT_NAMES = [f"{lead}_{n}" for lead in ("ECG1", "ECG2") for n in (
    "ctx_corr_med", "ctx_corr_min3", "ctx_low_corr_frac", "ctx_fast_rate_ratio", "ctx_env_ratio", "ctx_lf_share_delta",
    "ctx_width_ratio")] + [f"{p}_{n}" for p in ("ABP", "PPG") for n in ("ctx_amp_ratio", "ctx_rate_ratio")] + [
    "ctx_corr_best", "ctx_pulse_amp_ratio_min"]


def context(record) -> list[float]:
    """``CONTEXT_NAMES``: the alarm window's last 8 s against the same patient's 20 s before the window."""
    W = window(record, ALARM_S, 16.0).astype(np.float64)
    B = window(record, ALARM_S - 16.0, 20.0).astype(np.float64)
    M, nb = record.mask, B.shape[1]
    out = []
    for s in (0, 1):
        if not M[s] or not np.isfinite(W[s]).any() or not np.isfinite(B[s]).any():
            out += [np.nan] * 7
            continue
        x = fill_nan(np.concatenate([B[s], W[s]])[None])[0][0]
        wide, idx, w, beats = _beats(x)
        env = np.abs(signal.hilbert(wide))
        env_ratio = float(np.median(env[nb + 12 * FS:]) / (np.median(env[:nb]) + 1e-9))
        lf_delta = max(_lf_share(wide[a:a + 2 * FS]) for a in range(nb + 8 * FS, len(x) - 2 * FS + 1, FS)) - float(
            np.median([_lf_share(wide[a:a + 2 * FS]) for a in range(0, nb - 2 * FS + 1, 2 * FS)]))
        base, last = idx < nb, idx >= nb + 8 * FS
        if base.sum() < 4 or last.sum() < 2:
            out += [np.nan] * 4 + [env_ratio, lf_delta, np.nan]
            continue
        corr = _corr(beats, np.median(beats[base], axis=0))[last]
        tl = idx[last] / FS
        k = min(4, len(tl) - 1)
        fast_rr = float(np.min(np.convolve(np.diff(tl), np.ones(k) / k, "valid")))
        out += [float(np.median(corr)), float(np.sort(corr)[:3].mean()), float((corr < 0.7).mean()),
                float(np.median(np.diff(idx[base])) / FS / fast_rr), env_ratio, lf_delta, float(np.median(w[last]) / (np.median(w[base]) + 1e-9))]
    for s in (2, 3):
        if not M[s] or not np.isfinite(W[s]).any() or not np.isfinite(B[s]).any():
            out += [np.nan, np.nan]
            continue
        bp = filtered(fill_nan(np.concatenate([B[s], W[s]])[None])[0], "pulse", FS)[0]

        def rate(seg):
            f, p = signal.periodogram(seg - seg.mean(), FS)
            m = (f >= 0.5) & (f <= 4)
            return f[m][np.argmax(p[m])]

        out += [float(_block_amps(bp, nb + 8 * FS, len(bp)).min() / (np.median(_block_amps(bp, 0, nb)) + 1e-9)),
                float(rate(bp[nb + 8 * FS:]) / (rate(bp[:nb]) + 1e-9))]
    corr_best, amp_min = [out[0], out[7]], [out[14], out[16]]
    out.append(float(np.nanmax(corr_best)) if np.isfinite(corr_best).any() else np.nan)
    out.append(float(np.nanmin(amp_min)) if np.isfinite(amp_min).any() else np.nan)
    return out


def cache_path(n_records: int) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "holmes-icu" / f"verdict_ideas_{n_records}.npz"


def feature_matrices(records, cache: Path) -> dict[str, np.ndarray]:
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["records"]) == [r.name for r in records]:
            return {k: z[k] for k in z.files if k != "records"}
    from tqdm import tqdm

    from models.verdict_shift import default_cache, shift_features

    out = shift_features(records, SHIFTS, progress=True, cache=default_cache(len(records)))
    out["morph"] = np.array([morphology(r) for r in tqdm(records, desc="morphology", unit="record")])
    out["context"] = np.array([context(r) for r in tqdm(records, desc="context", unit="record")])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, records=np.array([r.name for r in records]), **out)
    return out


# -- fits -----------------------------------------------------------------------------------------------------------
FITS = {  # name: (feature matrix per shift, training shifts, scored shifts)
    "batch": (lambda F, o: F[f"batch@{o}"], (0,), SHIFTS),
    "inc": (lambda F, o: F[f"inc@{o}"], (0,), SHIFTS),
    "inc8": (lambda F, o: F[f"inc@{o}"], (0,), INC_SHIFTS),
    "batch+morph": (lambda F, o: np.hstack([F["batch@0"], F["morph"]]), (0,), (0,)),
    "batch+context": (lambda F, o: np.hstack([F["batch@0"], F["context"]]), (0,), (0,)),
    "batch-shift01": (lambda F, o: F[f"batch@{o}"], (0, 1), (0,)),
    "inc-shift01": (lambda F, o: F[f"inc@{o}"], (0, 1), (0,)),
    "batch-shift012": (lambda F, o: F[f"batch@{o}"], (0, 1, 2), (0,)),
    "inc-shift012": (lambda F, o: F[f"inc@{o}"], (0, 1, 2), (0,)),
}


def _fit_predict(F, name, T, y, tr, te) -> dict[int, np.ndarray]:
    from models.feature_models import design_matrix
    from models.typed_heads import TypedHeads

    get, train, scored = FITS[name]
    idx = np.flatnonzero(tr)
    X = np.vstack([get(F, o)[idx] for o in train])
    rows_t = np.concatenate([T[idx]] * len(train))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = TypedHeads(base="vote", seed=0).fit(design_matrix(X, list(rows_t)), np.concatenate([y[idx]] * len(train)),
                                                  groups=np.concatenate([idx] * len(train)))
        return {o: est.predict_proba(design_matrix(get(F, o)[te], list(T[te])))[:, 1] for o in scored}


def _specialists(F, T, y, folds) -> np.ndarray:
    """Out-of-fold probability of each VT / bradycardia record from its type's specialist (NaN for the other types)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = np.full(len(y), np.nan)
    names = list(FEATURE_NAMES)
    for typ, cols in SPECIALIST_FEATURES.items():
        X = F["batch@0"][:, [names.index(c) for c in cols]]
        for k in np.unique(folds):
            tr, te = (folds != k) & (T == typ), (folds == k) & (T == typ)
            m = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler(),
                              LogisticRegression(C=0.3, max_iter=2000))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[te] = m.fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    return out


def _cnn_zoo(records, y) -> np.ndarray:
    """The registry's CNNs' mean out-of-fold probability, calibrated on nested folds of those predictions."""
    from models.calibration import nested_calibrate
    from models.registry import Registry

    reg = Registry()
    probs, fold = [], None
    for prof in reg.profiles():
        if prof.get("kind") != "cnn":
            continue
        o = prof["oof"]
        at = {r: i for i, r in enumerate(o["records"])}
        probs.append([o["prob"][at[r.name]] for r in records])
        fold = np.array([o["fold"][at[r.name]] for r in records])
    return nested_calibrate(np.mean(probs, axis=0), y, fold)[0], len(probs)


def rules(P: dict, spec: np.ndarray, cnn: np.ndarray) -> dict:
    """{rule: probability per record} for one fold seed; ``P[(fit, shift)]``."""
    blend = 0.5 * (P["batch", 0] + P["inc", 0])
    out = {"batch": P["batch", 0], "inc": P["inc", 0], "served: mean(batch, inc)": blend}
    has = np.isfinite(spec)
    third = blend.copy()
    third[has] = (P["batch", 0][has] + P["inc", 0][has] + spec[has]) / 3
    out["specialists: mean(batch, inc, specialist)"] = third
    for f in ("batch+morph", "batch+context"):
        out[f"mean({f}, inc)"] = 0.5 * (P[f, 0] + P["inc", 0])
        out[f"mean(batch, inc, {f})"] = (P["batch", 0] + P["inc", 0] + P[f, 0]) / 3
    for w in (0.2, 1 / 3):
        out[f"cnn zoo: (1-w) blend + w zoo, w={w:.2f}"] = (1 - w) * blend + w * cnn
    for K in (1, 2, 3, 4):
        out[f"test-time shift 0..{K} s"] = averaged(*[np.stack([P[part, o] for o in SHIFTS]) for part in ("batch", "inc")], K)
    for s in ("01", "012"):
        out[f"train-time shift {s}: mean(batch-shift, inc-shift)"] = 0.5 * (P[f"batch-shift{s}", 0] + P[f"inc-shift{s}", 0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "verdict_ideas.json"))
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    warnings.simplefilter("ignore", RuntimeWarning)
    from joblib import Parallel, delayed
    from tqdm import tqdm

    records, _ = load_dataset(resolve_data_dir(args.data), progress=True)
    records = [r for r in records if r.label is not None]
    t0 = time.perf_counter()
    F = feature_matrices(records, cache_path(len(records)))
    feat_s = time.perf_counter() - t0
    T = np.array([r.alarm_type for r in records])
    y = np.array([int(r.label) for r in records])
    infos = [RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records]
    cnn, n_cnn = _cnn_zoo(records, y)
    t1 = time.perf_counter()
    folds = {s: cv_folds(infos, 5, seed=s) for s in range(args.seeds)}
    work = [(n, s, k) for s in range(args.seeds) for k in range(5) for n in FITS]
    res = Parallel(n_jobs=args.jobs, return_as="generator")(
        delayed(_fit_predict)(F, n, T, y, folds[s] != k, folds[s] == k) for n, s, k in work)
    P = {s: {} for s in range(args.seeds)}
    for (n, s, k), pred in tqdm(zip(work, res), total=len(work), desc="outer folds", unit="fit"):
        for o, p in pred.items():
            P[s].setdefault((n, o), np.zeros(len(y)))[folds[s] == k] = p
    per_seed: dict[str, list] = {}
    for s in range(args.seeds):
        for name, p in rules(P[s], _specialists(F, T, y, folds[s]), cnn).items():
            per_seed.setdefault(name, []).append(_row(y, p, T))

    summary = summarize_rules(per_seed, "served: mean(batch, inc)", "minus_served")
    out = {"command": "bench/verdict_ideas.py " + " ".join(sys.argv[1:]), "records": len(records), "fold_seeds": args.seeds,
           "model": "features-typed (TypedHeads, vote base) per fit; cut at a calibrated 1/6",
           "protocol": "nested, record-grouped: 5 outer folds per fold seed, every fit on the outer training part only "
                       "(its Platt maps on its own inner folds, grouped by record); the CNN zoo from the registry's "
                       "out-of-fold predictions (one fold seed), calibrated on nested folds of them",
           "cnn_members": n_cnn, "features": {"morph": MORPH_NAMES, "context": CONTEXT_NAMES, "specialists": SPECIALIST_FEATURES},
           "features_s": round(feat_s, 1), "cv_wall_s": round(time.perf_counter() - t1, 1), "summary": summary, "per_seed": per_seed}
    Path(args.out).write_text(json.dumps(out, indent=1))
    _plot(out, Path(args.out).with_suffix(".png"))
    print_rules(summary, 52)
    print(f"wrote {args.out}")
    return 0


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = out["summary"]
    names = list(summ)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [3, 2]})
    paired_bars(a1, summ, out["fold_seeds"])
    x = np.arange(len(ALARM_TYPES))
    show = [n for n in names if n in ("batch", "served: mean(batch, inc)")] + [max(names, key=lambda n: summ[n]["score"]["mean"])]
    for i, n in enumerate(dict.fromkeys(show)):
        a2.bar(x + i * 0.27, [summ[n]["per_type"][a]["mean"] for a in ALARM_TYPES], 0.27, label=n)
    a2.axhline(75, color="r", lw=0.8, label="75 per type")
    a2.set_xticks(x + 0.27, [a.replace("_", " ") for a in ALARM_TYPES], fontsize=7, rotation=15)
    a2.set_ylabel("score per alarm type")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
