"""Which feature set should the served verdict model see? features-typed on the batch features, on the incremental
features (streamed, or from the 16 s window alone as a verdict request carries it), on both side by side, and the
mean of the batch and incremental models, under the same nested, record-grouped folds.

    .venv/bin/python bench/feature_sets.py [--data DIR] [--seeds 5] [--jobs 2]

Feature sets of each record's alarm window (all 501 development records):
- ``batch``: ``models.features.extract_batch`` of the 16 s window (what the plan's features-typed member sees);
- ``inc``: ``models.incremental`` with the record streamed from its start in 1 s hops (what the routine lane sees);
- ``inc_window``: ``models.incremental`` on the 16 s window alone, pushed at once (a bed restarted on the window);
- ``batch+inc``: both, 198 columns.
Models: the features-typed estimator (``TypedHeads``: vote + per-type heads, Platt map per alarm type on its own
inner folds) fitted per outer training part; ``mean(batch, inc)`` / ``mean(batch, inc_window)``: the mean of the two
fitted models' calibrated probabilities. Every rule answers "true" at p >= 1/6, the cost-optimal cut of a calibrated
probability for the challenge's 5:1 cost (nothing is tuned on the outer fold). Scores: challenge score, AUROC, TPR,
TNR, ECE (10 bins), per alarm type; mean and spread over ``--seeds`` fold seeds; paired differences against
``batch`` per seed.

Feature matrices are cached in ~/.cache/holmes-icu/feature_sets_<n>.npz (the incremental stream takes ~5 min).
Writes bench/results/feature_sets.json and .png, and the outer-fold probabilities of every fit and fold seed
(``<out>.probs.npz``) for rules scored later on the same fits. ``--sets batch inc`` fits only those.
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
from models.data import ALARM_TYPES, RecordInfo, alarm_window, cv_folds, load_dataset, resolve_data_dir  # noqa: E402
from models.metrics import auroc, summarize  # noqa: E402

CUT = 1.0 / 6.0  # calibrated probability at which a false alarm (cost 1) and a missed true one (cost 5) break even
SETS = ("batch", "inc", "inc_window", "batch+inc")
MEANS = {"mean(batch, inc)": ("batch", "inc"), "mean(batch, inc_window)": ("batch", "inc_window")}


def feature_matrices(records, cache: Path) -> dict[str, np.ndarray]:
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["records"]) == [r.name for r in records]:
            return {k: z[k] for k in ("batch", "inc", "inc_window")}
    from models.features import extract_batch
    from models.incremental import IncrementalFeatures
    from models.incremental_model import alarm_features

    W = np.stack([alarm_window(r) for r in records])
    M = np.stack([r.mask for r in records])
    fs = records[0].fs_hz
    out = {"batch": extract_batch(W, M, fs), "inc": alarm_features(records, progress=True)}
    w = W.astype(np.float64)
    w[~M] = np.nan  # absent channels, as alarm_features streams them
    inc = IncrementalFeatures(len(records), fs)
    inc.push(w)
    out["inc_window"] = inc.features(M)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, records=np.array([r.name for r in records]), **out)
    return out


def _fit_predict(X, T, y, tr, te, seed: int) -> np.ndarray:
    from models.feature_models import _estimator, design_matrix

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _estimator("typed", seed).fit(design_matrix(X[tr], list(T[tr])), y[tr])
        return est.predict_proba(design_matrix(X[te], list(T[te])))[:, 1]


def _row(y, p, T, pred=None) -> dict:
    """The figures of one rule's probabilities ``p``; its verdicts ``pred`` (default: ``p`` cut at 1/6)."""
    sm = summarize(y, p, ((p >= CUT) if pred is None else np.asarray(pred)).astype(int), list(T))
    return {"score": sm["score"], "auroc": auroc(y, p), "tpr": sm["tpr"], "tnr": sm["tnr"], "ece": ece(y, p),
            "per_type": {a: v["score"] for a, v in sm["per_type"].items()}}


def nested(X_by: dict, T, y, infos, seeds: int, jobs: int, probs_out: Path | None = None) -> dict:
    from joblib import Parallel, delayed
    from tqdm import tqdm

    work = [(name, s, k, cv_folds(infos, 5, seed=s)) for s in range(seeds) for k in range(5) for name in X_by]
    res = Parallel(n_jobs=jobs, return_as="generator")(delayed(_fit_predict)(X_by[n], T, y, f != k, f == k, 0) for n, s, k, f in work)
    prob = {(n, s): np.zeros(len(y)) for n in X_by for s in range(seeds)}
    for (n, s, k, f), p in tqdm(zip(work, res), total=len(work), desc="outer folds", unit="fit"):
        prob[n, s][f == k] = p
    if probs_out is not None:  # the outer-fold probabilities, for rules scored later on the same fits
        np.savez(probs_out, **{f"{n}|{s}": p for (n, s), p in prob.items()},
                 **{f"folds|{s}": cv_folds(infos, 5, seed=s) for s in range(seeds)})
    means = {m: ab for m, ab in MEANS.items() if set(ab) <= set(X_by)}
    for m, (a, b) in means.items():
        for s in range(seeds):
            prob[m, s] = 0.5 * (prob[a, s] + prob[b, s])
    names = list(X_by) + list(means)
    per_seed = {n: [_row(y, prob[n, s], T) for s in range(seeds)] for n in names}
    return {"summary": summarize_rules(per_seed, "batch", "minus_batch"), "per_seed": per_seed}


def summarize_rules(per_seed: dict[str, list[dict]], ref: str, diff_key: str) -> dict:
    """Mean and spread over fold seeds of each rule's ``_row`` figures and per-type scores, and its paired score
    difference to rule ``ref`` per seed (to itself, 0, when ``ref`` was not run)."""

    def agg(v):
        v = np.asarray(v, dtype=np.float64)
        return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std()), 3)}

    summary = {}
    for n, rows in per_seed.items():
        summary[n] = {k: agg([r[k] for r in rows]) for k in ("score", "auroc", "tpr", "tnr", "ece")}
        summary[n]["per_type"] = {a: agg([r["per_type"][a] for r in rows]) for a in ALARM_TYPES}
        d = [r["score"] - b["score"] for r, b in zip(rows, per_seed.get(ref, rows))]
        summary[n][diff_key] = {"per_seed": [round(x, 3) for x in d], **agg(d), "seeds_better": int(sum(x > 0 for x in d))}
    return summary


def print_rules(summary: dict, width: int = 52) -> None:
    """A table of ``summarize_rules``' output (diff key ``minus_served``): score, paired difference, AUROC, ECE, per type."""
    print(f"{'rule':{width}s} {'score':>14s} {'vs served':>20s} {'AUROC':>6s} {'ECE':>6s}  " + " ".join(f"{a[:6]:>6s}" for a in ALARM_TYPES))
    for n, s in summary.items():
        d = s["minus_served"]
        print(f"{n:{width}s} {s['score']['mean']:6.2f} ± {s['score']['sd']:4.2f}  {d['mean']:+6.2f} ± {d['sd']:4.2f} ({d['seeds_better']}) "
              f"{s['auroc']['mean']:6.3f} {s['ece']['mean']:6.3f}  " + " ".join(f"{s['per_type'][a]['mean']:6.1f}" for a in ALARM_TYPES))


def paired_plot(out: dict, path, title: str, height: float = 2.6) -> None:
    """A one-panel picture of ``paired_bars`` for a bench's JSON ``out`` (its ``summary`` and ``fold_seeds``, the fold
    seeds ``first_seed`` ..), titled ``title`` and the fold seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, height))
    paired_bars(ax, out["summary"], out["fold_seeds"])
    ax.set_title(f"{title} (fold seeds {out['first_seed']}..{out['first_seed'] + out['fold_seeds'] - 1})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paired_bars(ax, summary: dict, fold_seeds: int) -> None:
    """Each rule's paired score difference to the served blend (mean, spread over fold seeds; green: better on all)."""
    names = list(summary)
    d = [summary[n]["minus_served"] for n in names]
    ax.barh(names, [x["mean"] for x in d], xerr=[x["sd"] for x in d], capsize=3,
            color=["tab:green" if x["mean"] > 0 and x["seeds_better"] == fold_seeds else "tab:gray" for x in d])
    ax.axvline(0, color="k", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(f"challenge score minus the served blend (paired, {fold_seeds} fold seeds)")
    ax.tick_params(axis="y", labelsize=7)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="feature sets to fit (default: all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "feature_sets.json"))
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    warnings.simplefilter("ignore", RuntimeWarning)
    records, _ = load_dataset(resolve_data_dir(args.data), progress=True)
    records = [r for r in records if r.label is not None]
    t0 = time.perf_counter()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "holmes-icu" / f"feature_sets_{len(records)}.npz"
    F = feature_matrices(records, cache)
    F["batch+inc"] = np.hstack([F["batch"], F["inc"]])
    feat_s = time.perf_counter() - t0
    T = np.array([r.alarm_type for r in records])
    y = np.array([int(r.label) for r in records])
    infos = [RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records]
    t1 = time.perf_counter()
    res = nested({k: F[k] for k in args.sets}, T, y, infos, args.seeds, args.jobs, Path(args.out).with_suffix(".probs.npz"))
    out = {"command": "bench/feature_sets.py " + " ".join(sys.argv[1:]), "records": len(records), "model": "features-typed (TypedHeads, vote base)",
           "protocol": "nested, record-grouped: 5 outer folds per fold seed; the model's Platt maps on its own inner folds of the outer "
                       "training part; every rule cut at a calibrated 1/6 (none tuned on the outer fold)",
           "fold_seeds": args.seeds, "features_s": round(feat_s, 1), "cv_wall_s": round(time.perf_counter() - t1, 1), **res}
    Path(args.out).write_text(json.dumps(out, indent=1))
    _plot(out, Path(args.out).with_suffix(".png"))
    print(f"{'rule':26s} {'score':>14s} {'vs batch':>15s} {'AUROC':>6s} {'ECE':>6s}  " + " ".join(f"{a[:6]:>6s}" for a in ALARM_TYPES))
    for n, s in res["summary"].items():
        d = s["minus_batch"]
        print(f"{n:26s} {s['score']['mean']:6.2f} ± {s['score']['sd']:4.2f}  {d['mean']:+6.2f} ± {d['sd']:4.2f} ({d['seeds_better']}) "
              f"{s['auroc']['mean']:6.3f} {s['ece']['mean']:6.3f}  " + " ".join(f"{s['per_type'][a]['mean']:6.1f}" for a in ALARM_TYPES))
    print(f"wrote {args.out}")
    return 0


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = out["summary"]
    names = list(summ)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.5))
    a1.bar(names, [summ[n]["score"]["mean"] for n in names], yerr=[summ[n]["score"]["sd"] for n in names], capsize=4)
    a1.axhline(84, color="r", lw=0.8, label="goal 84")
    a1.set_ylim(60, 90)
    a1.set_ylabel(f"challenge score (nested, {out['fold_seeds']} fold seeds)")
    a1.tick_params(axis="x", rotation=25)
    a1.legend()
    x = np.arange(len(ALARM_TYPES))
    wdt = 0.8 / len(names)
    for i, n in enumerate(names):
        a2.bar(x + i * wdt, [summ[n]["per_type"][a]["mean"] for a in ALARM_TYPES], wdt, label=n)
    a2.set_xticks(x + 0.4 - wdt / 2, [a.replace("_", " ") for a in ALARM_TYPES], fontsize=8)
    a2.axhline(75, color="r", lw=0.8)
    a2.set_ylabel("score per alarm type")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
