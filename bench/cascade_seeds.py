"""How much the cascade's nested-CV score depends on the rung models' random seed, measured in ONE run.

The folds stay the registry's (seed 0: the ensemble's out-of-fold predictions are tied to them); the rung
models (the quick forest and the multi-signal feature model of both stages) are refitted with seeds
0..N-1, and the cascade is scored with nested CV (gates of fold k tuned on the other folds) at each budget.
The cost table is measured once, so every seed is charged the same per-component costs.

    .venv/bin/python bench/cascade_seeds.py [--seeds 5] [--budgets 0.16 0.5 none]

Writes bench/results/cascade_seeds.json and .png and prints a table (mean and sd over seeds per budget).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _servebench import machine, write_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budgets", nargs="+", default=["0.14", "0.16", "0.2", "0.25", "0.5", "none"])
    ap.add_argument("--feature-model", default="features-vote")
    args = ap.parse_args()
    budgets = [None if b.lower() == "none" else float(b) for b in args.budgets]

    from tqdm import tqdm

    from models.data import load_dataset, resolve_data_dir
    from models.tables import format_table
    from models.zoo_eval import cv_summary
    from unfold.ensemble import EnsembleRef
    from unfold.evaluate import cost_table, default_stages, nested_cv, summary
    from unfold.fit import measure_ensemble
    from unfold.oof import build_data, fit_rungs, oof_probs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs, _ = load_dataset(resolve_data_dir())
    recs = [r for r in recs if r.label is not None]
    ens = EnsembleRef.from_registry()
    data = build_data(recs, ens, progress=False)
    ens_cost = measure_ensemble(ens, recs)
    separate = ens_cost.pop("ms_separate")
    costs = cost_table(data, fit_rungs(data, np.ones(len(data.y), dtype=bool), args.feature_model), ens_cost)
    stages = default_stages(args.feature_model)
    full = cv_summary(data.y, data.ensemble_prob, data.folds)
    runs = []
    for seed in tqdm(range(args.seeds), desc="rung seeds", unit="seed"):
        probs = oof_probs(data, args.feature_model, seed=seed, progress=False)
        quick_alone = cv_summary(data.y, probs[0][0], data.folds)
        for b in budgets:
            res, _ = nested_cv(data, probs, costs, stages, [b, b])
            s = summary(data, res, costs, stages)
            runs.append({"seed": seed, "budget_ms": b, "score": s["score"], "mean_ms": s["mean_ms"], "ms_reduction_x": s["ms_reduction_x"],
                         "macs_reduction_x": s["macs_reduction_x"], "frac_reached_ensemble": s["frac_reached_ensemble"],
                         "quick_alone_score": quick_alone["score"], "quick_alone_auroc": quick_alone["auroc"]})
    rows = []
    for b in budgets:
        rs = [r for r in runs if r["budget_ms"] == b]
        sc = [r["score"] for r in rs]
        rows.append({"budget": "none" if b is None else f"{b:g}", "score_mean": statistics.mean(sc), "score_sd": statistics.pstdev(sc),
                     "score_min": min(sc), "within_1_point": sum(s >= full["score"] - 1.0 for s in sc),
                     "ms_mean": statistics.mean(r["mean_ms"] for r in rs),
                     "ms_x_min": min(r["ms_reduction_x"] for r in rs), "ms_x_mean": statistics.mean(r["ms_reduction_x"] for r in rs)})
    out = {"machine": machine(), "seeds": args.seeds, "full_ensemble": {"score": full["score"], "auroc": full["auroc"], "ms": costs.ms("ensemble"),
           "ms_members_separately": separate}, "costs": costs.to_dict(), "rows": rows, "runs": runs}
    path = write_json("cascade_seeds.json", out)
    _plot(out, path.with_suffix(".png"))
    print(f"full ensemble: score {full['score']:.2f}, {costs.ms('ensemble'):.3f} ms/window ({separate:.3f} with every member on its own)")
    print(format_table(rows, [("budget", "budget ms/stage", ""), ("score_mean", "score mean", ".2f"), ("score_sd", "sd", ".2f"),
                              ("score_min", "min", ".2f"), ("within_1_point", f"seeds within 1 pt (of {args.seeds})", ".0f"),
                              ("ms_mean", "ms/window", ".3f"), ("ms_x_mean", "ms x less", ".1f"), ("ms_x_min", "min ms x less", ".1f")]))
    qa = [r["quick_alone_score"] for r in runs if r["budget_ms"] == budgets[0]]
    print(f"quick rung alone on every window: score {statistics.mean(qa):.2f} +- {statistics.pstdev(qa):.2f}; wrote {path}")
    return 0


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = out["full_ensemble"]
    fig, ax = plt.subplots(figsize=(7, 4.4))
    budgets = [r["budget"] for r in out["rows"]]
    for k, b in enumerate(budgets):
        rs = [r for r in out["runs"] if ("none" if r["budget_ms"] is None else f"{r['budget_ms']:g}") == b]
        ax.plot([r["mean_ms"] for r in rs], [r["score"] for r in rs], "o", color=f"C{k}", alpha=0.8, label=f"budget {b} ms/stage")
    ax.plot([full["ms"]], [full["score"]], "s", color="k", label="full ensemble on every window")
    ax.axhline(full["score"] - 1.0, color="grey", ls=":", lw=1, label="full ensemble - 1 point")
    ax.axvline(full["ms"] / 20.0, color="grey", ls="--", lw=1, label="20x less compute")
    from unfold.report import log_ms_axis

    log_ms_axis(ax, [r["mean_ms"] for r in out["runs"]] + [full["ms"]])
    ax.set_xlabel("model compute per window (ms, measured, log scale)")
    ax.set_ylabel("challenge score (nested CV, 300 records)")
    ax.set_title(f"Cascade score over {out['seeds']} rung-model seeds (one dot per seed)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
