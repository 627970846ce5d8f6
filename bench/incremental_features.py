"""Incremental per-bed features (``models.incremental``) against the batch extractor: cost per window in one run,
agreement on every alarm window, and the served model's score on each under the same nested folds.

    .venv/bin/python bench/incremental_features.py [--data DIR] [--repeats 5] [--seeds 3] [--jobs 2] [--no-cv]

1. Every development record is streamed as a bed from its start to the alarm (300 s, one 1 s hop at a time, all
   beds in one ``IncrementalFeatures``); the features of the window ending at the alarm are kept. The batch
   features (``models.features.extract_batch``) of the same windows are computed too.
2. Cost per window, the engines taking turns in each repeat (a change of machine speed hits all): batched
   (batch: 64 windows per call, compiled and reference engines; incremental: one hop of every bed pushed, then every
   bed's window, per bed) and one at a time (one window; incremental: one bed pushed a hop and featurized); and a
   bed's first window on the incremental path (every bed's state reset, its whole 16 s pushed, featurized: what a bed
   joining, a restarted consumer or a partition taken over costs per bed, before its windows move by hops).
   The reference engine's batched figure is the machine-speed figure (as in bench/features_cost.py).
3. Agreement: per feature, how many alarm windows are equal (1e-9) and the rank correlation; the quality features
   share their definition and must be equal.
4. Nested CV (unless ``--no-cv``): ``features-typed`` (the served routine model) fitted and scored on each feature
   set, 5 record-grouped outer folds, thresholds and calibration chosen on inner folds (as bench/typed_heads.py),
   ``--seeds`` fold seeds, the same folds for both; the paired difference per seed.

Writes bench/results/incremental_features.json and .png (cost bars; per-type scores).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.calibration import ece  # noqa: E402
from models.data import ALARM_S, ALARM_TYPES, RecordInfo, alarm_window, cv_folds, load_dataset, resolve_data_dir  # noqa: E402
from models.feature_models import make_feature_model  # noqa: E402
from models.features import FEATURE_NAMES, extract_batch, warm_up  # noqa: E402
from models.incremental import IncrementalFeatures  # noqa: E402
from models.incremental_model import alarm_features  # noqa: E402
from models.metrics import auroc, summarize  # noqa: E402
from models.tables import format_table  # noqa: E402


def _fold(X, T, y, tr, te):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = make_feature_model("features-typed", seed=0).fit(X[tr], list(T[tr]), y[tr])
        p = m.proba_from_features(X[te], list(T[te]))
    return p, p >= m.threshold_


def nested(X_by: dict, T, y, infos, seeds: int, jobs: int) -> dict:
    from joblib import Parallel, delayed
    from tqdm import tqdm

    jobs_list = [(name, s, k, cv_folds(infos, 5, seed=s)) for s in range(seeds) for name in X_by for k in range(5)]
    res = Parallel(n_jobs=jobs, return_as="generator")(delayed(_fold)(X_by[name], T, y, outer != k, outer == k)
                                                       for name, s, k, outer in jobs_list)
    prob = {(n, s): np.zeros(len(y)) for n in X_by for s in range(seeds)}
    pred = {(n, s): np.zeros(len(y), dtype=int) for n in X_by for s in range(seeds)}
    for (name, s, k, outer), (p, d) in tqdm(zip(jobs_list, res), total=len(jobs_list), desc="outer folds", unit="fit"):
        prob[name, s][outer == k], pred[name, s][outer == k] = p, d
    per_seed = {n: [] for n in X_by}
    for n in X_by:
        for s in range(seeds):
            sm = summarize(y, prob[n, s], pred[n, s], list(T))
            per_seed[n].append({"score": sm["score"], "auroc": auroc(y, prob[n, s]), "tpr": sm["tpr"], "tnr": sm["tnr"],
                                "ece": ece(y, prob[n, s]), "per_type": {a: v["score"] for a, v in sm["per_type"].items()}})

    def agg(v):
        v = np.asarray(v, dtype=np.float64)
        return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std()), 3)}

    summary = {n: {k: agg([r[k] for r in rows]) for k in ("score", "auroc", "tpr", "tnr", "ece")} for n, rows in per_seed.items()}
    for n, rows in per_seed.items():
        summary[n]["per_type"] = {a: agg([r["per_type"][a] for r in rows]) for a in ALARM_TYPES}
    d = [b["score"] - a["score"] for a, b in zip(per_seed["batch"], per_seed["incremental"])]
    return {"summary": summary, "per_seed": per_seed,
            "incremental_minus_batch": {"per_seed": [round(x, 3) for x in d], "mean": round(float(np.mean(d)), 3),
                                        "sd": round(float(np.std(d)), 3), "seeds_better": int(sum(x > 0 for x in d))}}


FIRST = "first window of a bed"  # every bed's state reset and its whole 16 s pushed: a bed joining, a restart, a takeover


def timing(S, M, W, fs: int, repeats: int, hops: int = 20) -> dict:
    """Per-window seconds per case and engine, the engines taking turns in each repeat."""
    B = len(S)
    warm_up(fs)
    extract_batch(W[:64], M[:64], fs, engine="reference")
    start = 20  # whole seconds streamed before timing (a window's worth and more)
    inc = IncrementalFeatures(B, fs)
    inc.push(S[:, :, : start * fs])
    one = IncrementalFeatures(1, fs)
    one.push(S[:1, :, : start * fs])
    one.features(M[:1])
    cold = IncrementalFeatures(B, fs)  # a bed's first window: its state reset and the whole window pushed at once
    Wn = W.astype(np.float64)
    Wn[~M] = np.nan  # absent channels NaN, as streamed
    cases = {("batched", "reference"): [], ("batched", "compiled"): [], ("batched", "incremental"): [],
             ("one at a time", "reference"): [], ("one at a time", "compiled"): [], ("one at a time", "incremental"): [],
             (FIRST, "incremental"): []}
    h = jo = start
    for _ in range(repeats):
        for engine in ("reference", "compiled"):
            for i in range(0, B - 63, 64):
                t = time.perf_counter()
                extract_batch(W[i : i + 64], M[i : i + 64], fs, engine=engine)
                cases["batched", engine].append((time.perf_counter() - t) / 64)
            for i in range(0, B, 4):
                t = time.perf_counter()
                extract_batch(W[i : i + 1], M[i : i + 1], fs, engine=engine)
                cases["one at a time", engine].append(time.perf_counter() - t)
        for _ in range(hops // repeats or 1):
            if (h + 1) * fs > S.shape[2]:
                h = start
                inc = IncrementalFeatures(B, fs)
                inc.push(S[:, :, : start * fs])
            t = time.perf_counter()
            inc.push(S[:, :, h * fs : (h + 1) * fs])
            inc.features(M)
            cases["batched", "incremental"].append((time.perf_counter() - t) / B)
            h += 1
        t = time.perf_counter()
        cold.reset()
        cold.push(Wn)
        cold.features(M)
        cases[FIRST, "incremental"].append((time.perf_counter() - t) / B)
        for _ in range(0, B, 4):  # one bed, one hop at a time: the same bed moves on through its stream
            if (jo + 1) * fs > S.shape[2]:
                jo = start
                one = IncrementalFeatures(1, fs)
                one.push(S[:1, :, : start * fs])
            t = time.perf_counter()
            one.push(S[:1, :, jo * fs : (jo + 1) * fs])
            one.features(M[:1])
            cases["one at a time", "incremental"].append(time.perf_counter() - t)
            jo += 1
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-cv", action="store_true", help="skip the nested cross-validation")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "incremental_features.json"))
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass

    warnings.simplefilter("ignore", RuntimeWarning)
    records, skipped = load_dataset(resolve_data_dir(args.data), progress=True)
    fs = records[0].fs_hz
    n = int(ALARM_S * fs)
    S = np.stack([r.signals[:, :n] for r in records]).astype(np.float64)
    M = np.stack([r.mask for r in records])
    S[~M] = np.nan
    W = np.stack([alarm_window(r) for r in records])

    t0 = time.perf_counter()
    X_inc = alarm_features(records, progress=True)  # every record a bed, streamed from 0 s to its alarm in 1 s hops
    stream_wall = time.perf_counter() - t0
    X_batch = extract_batch(W, M, fs)

    agree = []
    for j, name in enumerate(FEATURE_NAMES):
        a, b = X_inc[:, j], X_batch[:, j]
        both = np.isfinite(a) & np.isfinite(b)
        equal = np.isclose(a, b, rtol=1e-9, atol=1e-12) | (np.isnan(a) & np.isnan(b))
        rho = np.nan
        if both.sum() > 2 and np.ptp(a[both]) > 0 and np.ptp(b[both]) > 0:
            ra, rb = np.argsort(np.argsort(a[both])), np.argsort(np.argsort(b[both]))
            rho = float(np.corrcoef(ra, rb)[0, 1])
        agree.append({"feature": name, "equal": int(equal.sum()), "nan_mismatch": int((np.isnan(a) != np.isnan(b)).sum()),
                      "spearman": None if np.isnan(rho) else round(rho, 4)})

    cases = timing(S, M, W, fs, args.repeats)
    cost = [{"case": c, "engine": e, "n": len(v), "median_us": round(float(np.median(v)) * 1e6, 1),
             "p90_us": round(float(np.percentile(v, 90)) * 1e6, 1)} for (c, e), v in cases.items()]
    med = {(r["case"], r["engine"]): r["median_us"] for r in cost}
    speedup = {c: {"vs_compiled": round(med[c, "compiled"] / med[c, "incremental"], 2),
                   "vs_reference": round(med[c, "reference"] / med[c, "incremental"], 2)} for c in ("batched", "one at a time")}
    first_over_hop = round(med[FIRST, "incremental"] / med["batched", "incremental"], 2)

    out = {"command": "bench/incremental_features.py " + " ".join(sys.argv[1:]), "records": len(records), "skipped": skipped,
           "stream_s": n // fs, "stream_wall_s": round(stream_wall, 1),
           "machine_speed_ms": {"reference_batched": round(med["batched", "reference"] / 1e3, 3),
                                "note": "bench/features_cost.py's machine figure (reference engine, 64 per batch), same run"},
           "load_average_1min": os.getloadavg()[0], "cost": cost, "speedup": speedup,
           "first_window_over_hop": first_over_hop, "agreement": agree,
           "quality_features_equal": all(r["equal"] == len(records) for r in agree if r["feature"].endswith(("_nan_frac", "_flat_frac", "_sat_frac")))}
    if not args.no_cv:
        T = np.array([r.alarm_type for r in records])
        y = np.array([int(r.label) for r in records])
        infos = [RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records]
        t1 = time.perf_counter()
        out["nested"] = nested({"batch": X_batch, "incremental": X_inc}, T, y, infos, args.seeds, args.jobs)
        out["nested"].update({"model": "features-typed", "fold_seeds": args.seeds, "outer_folds": 5, "wall_s": round(time.perf_counter() - t1, 1),
                              "protocol": "nested, record-grouped: thresholds and calibration maps chosen on inner folds of each outer training part"})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    _plot(out, Path(args.out).with_suffix(".png"))

    print(format_table(cost, [("case", "case", ""), ("engine", "engine", ""), ("n", "windows", "d"), ("median_us", "median us", ".1f"),
                              ("p90_us", "p90 us", ".1f")]))
    for c, v in speedup.items():
        print(f"{c}: incremental {v['vs_compiled']:.1f}x cheaper than compiled batch, {v['vs_reference']:.1f}x than reference")
    print(f"{FIRST}: {out['first_window_over_hop']:.1f}x a hop's window (batched)")
    print(f"quality features equal on every window: {out['quality_features_equal']}; machine figure (reference, batched) "
          f"{out['machine_speed_ms']['reference_batched']:.2f} ms")
    if "nested" in out:
        for name, s in out["nested"]["summary"].items():
            print(f"{name:12s} score {s['score']['mean']:.2f} ± {s['score']['sd']:.2f}  AUROC {s['auroc']['mean']:.3f}  ECE {s['ece']['mean']:.3f}  "
                  + " ".join(f"{a[:6]} {s['per_type'][a]['mean']:.1f}" for a in ALARM_TYPES))
        d = out["nested"]["incremental_minus_batch"]
        print(f"incremental - batch: {d['mean']:+.2f} ± {d['sd']:.2f} ({d['seeds_better']}/{args.seeds} seeds better)")
    print(f"wrote {args.out}")
    return 0


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if "nested" in out else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    engines = ("reference", "compiled", "incremental")
    cases = ("batched", "one at a time")
    med = {(r["case"], r["engine"]): r["median_us"] for r in out["cost"]}
    for i, e in enumerate(engines):
        ax.bar(np.arange(len(cases)) + (i - 1) * 0.27, [med[c, e] for c in cases], 0.27, label=e)
    ax.set_xticks(range(len(cases)), cases)
    ax.set_yscale("log")
    ax.set_ylabel("CPU per 16 s window (us, median)")
    ax.set_title("features per window, one run")
    ax.legend()
    if panels == 2:
        ax = axes[1]
        s = out["nested"]["summary"]
        for i, name in enumerate(("batch", "incremental")):
            m = [s[name]["per_type"][a]["mean"] for a in ALARM_TYPES] + [s[name]["score"]["mean"]]
            sd = [s[name]["per_type"][a]["sd"] for a in ALARM_TYPES] + [s[name]["score"]["sd"]]
            ax.bar(np.arange(len(m)) + (i - 0.5) * 0.4, m, 0.4, yerr=sd, label=name)
        ax.set_xticks(range(len(ALARM_TYPES) + 1), [a.replace("Ventricular_", "V")[:8] for a in ALARM_TYPES] + ["all"])
        ax.set_ylim(50, 100)
        ax.set_ylabel("challenge score (nested CV)")
        ax.set_title(f"features-typed, {out['nested']['fold_seeds']} fold seeds")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
