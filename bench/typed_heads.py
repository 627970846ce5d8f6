"""Per-alarm-type heads against the global feature model, nested and record-grouped, same folds.

    .venv/bin/python bench/typed_heads.py [--data DIR] [--seeds 5] [--jobs 2]
    .venv/bin/python bench/typed_heads.py --models features-vote features-typed features-typed-auto --out bench/results/typed_heads_auto.json

For each of ``--seeds`` fold seeds the development records are split into 5 outer folds (record-grouped,
stratified by alarm type and label, ``models.data.cv_folds``). Each model is fitted on the 4 training folds with
``FeatureModel.fit`` (its threshold chosen on inner folds of those 4 only; ``features-typed`` also fits its
per-type calibration maps on inner folds of its own) and scores the outer fold. Nothing is chosen on a scored
record. Reported per model: challenge score, AUROC, TPR, TNR, ECE (10 equal-width bins) and the score per alarm
type, mean and standard deviation over the fold seeds, and the paired difference of each model minus the first per seed.

Two more base models, each screened here against features-typed on the batch features. The plan for both was fixed
before either run (in the commit messages of ``features-typed-vote3`` and ``features-typed-sym``); it was meant to be
in this docstring from then, but that edit missed, so the text below was written down after the vote3 run and during
the sym run, word for word the plan:

- ``features-typed-vote3`` (``--models features-typed features-typed-vote3 --out bench/results/typed_heads_vote3.json``):
  typed heads over the soft vote of logistic regression, extra trees *and* the gradient-boosted trees of
  ``features-gbm``; the voters make different errors on tabular data, and the zoo's gbm member was never inside the
  typed heads.
- ``features-typed-sym`` (``--models features-typed features-typed-sym --out bench/results/typed_heads_sym.json``):
  the voters also see, for each of the 26 per-lead ECG features, its min and max over the two ECG slots
  (``models.feature_models.with_lead_extremes``). Which lead a record puts in the first slot varies (II, V, aVF, III,
  MCL...), so "ECG1_max_hr5" means different leads on different records, while "the faster lead's max_hr5" means the
  same on all; with a few dozen rows per alarm type, a head can learn the second and not the first.
- **Keep rule.** A variant goes on to the served verdict (``bench/shift_nested.py`` and the definition gate, both
  fold-seed sets) only if its paired difference here is positive and better on at least 4 of 5 seeds, and is served
  only if it then gains on both fold-seed sets (positive mean, at least 4/5 seeds each).

Results (one run each, ~37 min): **vote3 not kept**: features-typed 78.74 +/- 1.42, features-typed-vote3 78.25 +/-
1.74, paired -0.49 +/- 1.40, better on 3/5 seeds; AUROC 0.956 -> 0.959, ECE 0.032 -> 0.028; VF/flutter 75.0 -> 89.7
and VT 71.6 -> 68.4 (a third voter moves the few-record types most). The reference reads 78.74 here and 78.56 in
``typed_heads.json``: the fits are not bit-reproducible across runs (one or two records per fold seed move), which is
why every comparison re-runs its reference. **sym not kept**: features-typed 78.74 +/- 1.42 (the reference reproduced
to the digit this time), features-typed-sym 76.74 +/- 1.28, paired -2.00 +/- 0.85, better on 0/5 seeds, lower on
every alarm type (VT 71.6 -> 68.1): 52 more columns cost the small per-type heads more than the lead order did.

Writes bench/results/typed_heads.json and typed_heads.png (per-type scores, reliability curves).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.calibration import ece  # noqa: E402
from models.data import ALARM_TYPES, RecordInfo, cv_folds, load_dataset, resolve_data_dir  # noqa: E402
from models.feature_models import make_feature_model  # noqa: E402
from models.features import extract_batch  # noqa: E402
from models.metrics import auroc, summarize  # noqa: E402
from models.zoo_eval import alarm_batch  # noqa: E402

MODELS = ("features-vote", "features-typed")  # the default comparison; --models for others (the first is the reference)


def _fold(name: str, X, T, y, tr, te, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = make_feature_model(name, seed=0).fit(X[tr], list(T[tr]), y[tr])
        p = m.proba_from_features(X[te], list(T[te]))
    return p, p >= m.threshold_


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="feature models by registry name; the first is the reference")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "typed_heads.json"))
    args = ap.parse_args()
    models = tuple(args.models)

    from joblib import Parallel, delayed
    from tqdm import tqdm

    records, skipped = load_dataset(resolve_data_dir(args.data), progress=True)
    windows, masks, types = alarm_batch(records, 16.0)
    X = extract_batch(windows, masks)
    T = np.array(types)
    y = np.array([int(r.label) for r in records])
    infos = [RecordInfo(r.name, r.alarm_type, int(r.label)) for r in records]
    jobs = [(name, s, k, cv_folds(infos, 5, seed=s)) for s in range(args.seeds) for name in models for k in range(5)]
    t0 = time.perf_counter()
    res = Parallel(n_jobs=args.jobs, return_as="generator")(
        delayed(_fold)(name, X, T, y, outer != k, outer == k, s) for name, s, k, outer in jobs)
    prob = {(n, s): np.zeros(len(y)) for n in models for s in range(args.seeds)}
    pred = {(n, s): np.zeros(len(y), dtype=int) for n in models for s in range(args.seeds)}
    for (name, s, k, outer), (p, d) in tqdm(zip(jobs, res), total=len(jobs), desc="outer folds", unit="fit"):
        te = outer == k
        prob[name, s][te], pred[name, s][te] = p, d
    wall = time.perf_counter() - t0

    per_seed = {n: [] for n in models}
    for n in models:
        for s in range(args.seeds):
            sm = summarize(y, prob[n, s], pred[n, s], list(T))
            per_seed[n].append({"score": sm["score"], "auroc": auroc(y, prob[n, s]), "tpr": sm["tpr"], "tnr": sm["tnr"],
                                "ece": ece(y, prob[n, s]), "fn": sm["fn"], "fp": sm["fp"],
                                "per_type": {a: v["score"] for a, v in sm["per_type"].items()}})

    def agg(rows, key):
        v = np.array([r[key] for r in rows], dtype=np.float64)
        return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std()), 3)}

    summary = {}
    for n in models:
        rows = per_seed[n]
        summary[n] = {k: agg(rows, k) for k in ("score", "auroc", "tpr", "tnr", "ece", "fn", "fp")}
        summary[n]["per_type"] = {a: agg([{"v": r["per_type"][a]} for r in rows], "v") for a in ALARM_TYPES}
    ref = models[0]

    def paired(n):
        d = [b["score"] - a["score"] for a, b in zip(per_seed[ref], per_seed[n])]
        return {"per_seed": [round(x, 3) for x in d], "mean": round(float(np.mean(d)), 3), "sd": round(float(np.std(d)), 3),
                "seeds_better": int(sum(x > 0 for x in d))}
    out = {
        "command": "bench/typed_heads.py " + " ".join(sys.argv[1:]),
        "records": len(y), "skipped": skipped, "fold_seeds": args.seeds, "outer_folds": 5, "wall_s": round(wall, 1),
        "protocol": "nested, record-grouped: thresholds and calibration maps chosen on inner folds of each outer training part",
        "summary": summary, "per_seed": per_seed, "reference": ref, "minus_reference": {n: paired(n) for n in models[1:]},
    }
    if models[:2] == MODELS:
        out["typed_minus_vote"] = out["minus_reference"]["features-typed"]
    Path(args.out).write_text(json.dumps(out, indent=1))
    _plot(y, T, prob, summary, Path(args.out).with_suffix(".png"), args.seeds, models)

    print(f"{'model':16s} {'score':>14s} {'AUROC':>7s} {'TPR':>6s} {'TNR':>6s} {'ECE':>6s}  " + " ".join(f"{a[:6]:>7s}" for a in ALARM_TYPES))
    for n in models:
        s = summary[n]
        print(f"{n:16s} {s['score']['mean']:7.2f} ± {s['score']['sd']:4.2f} {s['auroc']['mean']:7.3f} {s['tpr']['mean']:6.3f} "
              f"{s['tnr']['mean']:6.3f} {s['ece']['mean']:6.3f}  " + " ".join(f"{s['per_type'][a]['mean']:7.1f}" for a in ALARM_TYPES))
    for n, d in out["minus_reference"].items():
        print(f"{n} - {ref}: {d['mean']:+.2f} ± {d['sd']:.2f} ({d['seeds_better']}/{args.seeds} seeds better)")
    print(f"{wall:.0f} s")
    return 0


def _plot(y, T, prob, summary, path: Path, seeds: int, models=MODELS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(ALARM_TYPES) + 1)
    bw = 0.8 / len(models)
    for i, n in enumerate(models):
        s = summary[n]
        m = [s["per_type"][a]["mean"] for a in ALARM_TYPES] + [s["score"]["mean"]]
        e = [s["per_type"][a]["sd"] for a in ALARM_TYPES] + [s["score"]["sd"]]
        a1.bar(x + (i - (len(models) - 1) / 2) * bw, m, bw, yerr=e, capsize=3, label=n)
    a1.axhline(75, color="grey", ls=":", lw=1)
    a1.set_xticks(x, [a.replace("Ventricular_", "V").replace("_", " ")[:10] for a in ALARM_TYPES] + ["all"], rotation=20)
    a1.set_ylabel("challenge score (nested)")
    a1.set_ylim(40, 100)
    a1.legend(loc="lower left", fontsize=8)
    a1.set_title(f"score per alarm type, {seeds} fold seeds (mean, sd)")
    edges = np.linspace(0, 1, 11)
    for n in models:
        p = np.concatenate([prob[n, s] for s in range(seeds)])
        yy = np.tile(y, seeds)
        b = np.clip(np.digitize(p, edges) - 1, 0, 9)
        cx = [p[b == k].mean() for k in range(10) if (b == k).any()]
        cy = [yy[b == k].mean() for k in range(10) if (b == k).any()]
        a2.plot(cx, cy, "o-", label=f"{n} (ECE {summary[n]['ece']['mean']:.3f})")
    a2.plot([0, 1], [0, 1], color="grey", ls=":")
    a2.set_xlabel("published P(true alarm)")
    a2.set_ylabel("observed fraction true")
    a2.set_title("reliability (outer-fold probabilities)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
