"""A safe cascade for routine windows: gates tuned under a bound on missed true alarms, nested CV over 5 fold seeds.

For each fold seed s (0..N-1) the records are split by ``models.data.cv_folds(records, 5, seed=s)`` (one
record is one group, stratified by alarm type and label); the cheap rungs (quick forest, multi-signal feature
model, both stages) are refitted out of fold on those folds with model seed s; the cascade is then scored with
nested CV: the gates of outer fold k are tuned on the other four folds' out-of-fold probabilities only (under
the per-stage budget and the miss bound) and applied to fold k. What varies with s: the outer folds, the folds
the cheap rungs are fitted on and their random seed. What does not: the ensemble's out-of-fold probabilities,
which are the registry's (members trained on the registry folds, seed 0; retraining the 28 members per seed
is out of reach here). Each window's ensemble probability is still out of fold for that window, but for
s != 0 the ensemble threshold and gates of outer fold k are tuned on probabilities from members that saw
fold k's windows in training (a second-order leak that flatters the ensemble row and the ensemble rung alike).
Seed 0 is the registry's folds, the ones ``holmes cascade fit`` uses.

The full ensemble row is scored on the same folds the same way: its threshold for fold k chosen on the other
folds. Missed true alarms (FN) are counted on the 501 windows' verdicts, the challenge score is
100 (TP + TN) / (TP + TN + FP + 5 FN). The cascade's answers here are those it gives a routine window: in the
service a window that answers a monitor alarm never gets a cascade verdict, it goes to the ensemble
(``unfold.scorer``'s verdict lane), so "the cascade never answers an alarm itself" holds by construction and
these figures are what the cascade would answer had the windows been routine.

Compute per window is priced with a cost table: the one measured once in this run (extractors at batch 64,
rung models, the ensemble in process, one thread), and the committed cascade's (``--costs-from``, default
v0007: what ``holmes cascade fit --costs-from v0007`` fits the served cascade with, so that budgets in ms mean
the same gates). The default bound and budget are chosen on the second: among the rows that, on every seed,
score within 1 point of the full ensemble, miss no more true alarms than it and spend >= 10x less compute,
the safest: the costliest error first (fewest missed true alarms against the full ensemble's on the worst
seed), then the best worst-seed score against it, then the most compute saved. If no row meets the targets
on every seed, the same among the rows that meet them on the mean; else none is chosen.

    .venv/bin/python bench/cascade_safe.py [--seeds 5] [--bounds none 0.1 0.07 0.05 0.03] [--budgets 0.16 ... none]
    .venv/bin/python bench/cascade_safe.py --plot-only   # redraw the PNG and the table from the JSON

Writes bench/results/cascade_safe.json and .png and prints a short table (mean and sd over the seeds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _servebench import machine, write_json  # noqa: E402

TARGET_X, TARGET_POINTS = 10.0, 1.0


def _opt(v: str):
    return None if v.lower() == "none" else float(v)


def _name(v) -> str:
    return "none" if v is None else f"{v:g}"


def ensemble_nested(y: np.ndarray, p: np.ndarray, folds: np.ndarray) -> dict:
    """The full ensemble on every window: fold k's threshold chosen on the other folds (as ``cv_summary``)."""
    from models.metrics import best_threshold, challenge_score

    pos = np.zeros(len(y), dtype=bool)
    for k in np.unique(folds):
        t = best_threshold(y[folds != k], p[folds != k])
        pos[folds == k] = p[folds == k] >= t
    return {"score": challenge_score(y, pos), "fn": int((~pos & y).sum()), "fp": int((pos & ~y).sum())}


def cheap_ick0(res, y: np.ndarray) -> tuple[int, int]:
    """(windows a cheap rung answered ICK0, true alarms among them) on the outer folds."""
    n = m = 0
    for path, t in zip(res.paths, y):
        name, d = path[-1]
        if d == "ICK0" and not name.endswith("/ensemble"):
            n += 1
            m += int(t)
    return n, m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--bounds", nargs="+", default=["none", "0.1", "0.07", "0.05", "0.03"], help="max_miss_rate values ('none': no bound)")
    ap.add_argument("--budgets", nargs="+", default=["0.16", "0.25", "0.3", "0.35", "0.4", "0.45", "0.5", "none"],
                    help="per-stage budgets, ms/window ('none': the most accurate gates)")
    ap.add_argument("--feature-model", default="features-vote")
    ap.add_argument("--costs-from", default="v0007", help="committed cascade whose cost table prices the choice (the one v0008 is fitted with)")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG and reprint the table from bench/results/cascade_safe.json")
    args = ap.parse_args()
    if args.plot_only:
        import json

        from _servebench import RESULTS

        out = json.loads((RESULTS / "cascade_safe.json").read_text())
        _plot(out, args.costs_from, RESULTS / "cascade_safe.png")
        _print(out, {t: _Table(c) for t, c in out["costs"].items()})
        return 0
    bounds, budgets = [_opt(b) for b in args.bounds], [_opt(b) for b in args.budgets]

    from tqdm import tqdm

    from models.data import cv_folds, load_dataset, resolve_data_dir
    from unfold.ensemble import EnsembleRef
    from unfold.evaluate import cost_table, default_stages, nested_cv, summary
    from unfold.fit import measure_ensemble
    from unfold.oof import build_data, fit_rungs, oof_probs
    from unfold.persist import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs, _ = load_dataset(resolve_data_dir())
    recs = [r for r in recs if r.label is not None]
    ens = EnsembleRef.from_registry()
    data = build_data(recs, ens, progress=True)
    ens_cost = measure_ensemble(ens, recs)
    separate = ens_cost.pop("ms_separate")
    tables = {"measured": cost_table(data, fit_rungs(data, np.ones(len(data.y), dtype=bool), args.feature_model), ens_cost),
              args.costs_from: load(version=args.costs_from).cascade.costs}
    stages = default_stages(args.feature_model)
    y = data.y.astype(bool)
    infos = [r.info for r in recs]
    runs, ensemble_runs = [], []
    configs = [(t, b, mb) for t in tables for b in budgets for mb in bounds]
    for seed in tqdm(range(args.seeds), desc="fold seeds", unit="seed"):
        folds = cv_folds(infos, 5, seed=seed)
        d = replace(data, folds=folds)
        probs = oof_probs(d, args.feature_model, seed=seed, progress=False)
        ens_row = ensemble_nested(y, data.ensemble_prob, folds)
        ensemble_runs.append({"seed": seed, **ens_row})
        for table, b, mb in tqdm(configs, desc=f"seed {seed}: nested CV per cost table x budget x bound", unit="config", leave=False):
            costs = tables[table]
            res, fits = nested_cv(d, probs, costs, stages, [b, b], max_miss_rate=mb)
            s = summary(d, res, costs, stages)
            n0, m0 = cheap_ick0(res, y)
            reached_feat = float(np.mean([len(p) > 1 and p[1][0] == f"{stages[0].name}/{stages[0].rungs[1].name}" for p in res.paths]))
            runs.append({"seed": seed, "costs": table, "budget_ms": b, "max_miss_rate": mb, "score": s["score"], "fn": s["fn"], "fp": s["fp"],
                         "score_vs_ensemble": s["score"] - ens_row["score"], "fn_vs_ensemble": s["fn"] - ens_row["fn"],
                         "frac_reached_ensemble": s["frac_reached_ensemble"], "frac_escalated_stage1": reached_feat,
                         "mean_ms": s["mean_ms"], "ms_reduction_x": s["ms_reduction_x"],
                         "cheap_ick0": n0, "cheap_ick0_true_alarms": m0, "cheap_ick0_miss_rate_outer": m0 / n0 if n0 else 0.0,
                         "stage1_quick_band": float(np.mean([f["thresholds"][0][0]["hi"] - f["thresholds"][0][0]["lo"] for f in fits])),
                         "tuning_meets_bound": all(r["meets_miss_bound"] for f in fits for r in f["fit"]),
                         "tuning_miss_rate_max": max((a["miss_rate"] for f in fits for r in f["fit"] for a in r["ick0"]), default=0.0)})
    rows = []
    for table, b, mb in configs:
        rs = [r for r in runs if r["costs"] == table and r["budget_ms"] == b and r["max_miss_rate"] == mb]

        def ms(key, rs=rs):
            v = [r[key] for r in rs]
            return statistics.mean(v), statistics.pstdev(v)

        row = {"costs": table, "budget": _name(b), "bound": _name(mb), "budget_ms": b, "max_miss_rate": mb}
        for key in ("score", "fn", "fp", "score_vs_ensemble", "fn_vs_ensemble", "frac_reached_ensemble", "frac_escalated_stage1", "mean_ms",
                    "ms_reduction_x", "cheap_ick0_miss_rate_outer", "stage1_quick_band"):
            row[f"{key}_mean"], row[f"{key}_sd"] = ms(key)
        row["score_vs_ensemble_min"] = min(r["score_vs_ensemble"] for r in rs)
        row["fn_vs_ensemble_max"] = max(r["fn_vs_ensemble"] for r in rs)
        row["ms_reduction_x_min"] = min(r["ms_reduction_x"] for r in rs)
        row["tuning_meets_bound"] = all(r["tuning_meets_bound"] for r in rs)
        row["meets_targets_every_seed"] = (row["score_vs_ensemble_min"] >= -TARGET_POINTS and row["fn_vs_ensemble_max"] <= 0
                                           and row["ms_reduction_x_min"] >= TARGET_X)
        row["meets_targets_on_mean"] = (row["score_vs_ensemble_mean"] >= -TARGET_POINTS and row["fn_vs_ensemble_mean"] <= 0
                                        and row["ms_reduction_x_mean"] >= TARGET_X)
        rows.append(row)
    chosen = {}
    for table in tables:
        cand = [r for r in rows if r["costs"] == table and r["meets_targets_every_seed"]]
        rule = "every seed"
        if not cand:
            cand, rule = [r for r in rows if r["costs"] == table and r["meets_targets_on_mean"]], "mean over seeds"
        best = max(cand, key=lambda r: (-r["fn_vs_ensemble_max"], round(r["score_vs_ensemble_min"], 6), r["ms_reduction_x_mean"])) if cand else None
        chosen[table] = {"rule": f"targets met on {rule}; fewest worst-seed misses, then best worst-seed score, then most compute saved"
                         if best else "no row meets the targets",
                         "budget_ms": best["budget_ms"] if best else None, "max_miss_rate": best["max_miss_rate"] if best else None}
    es = [r["score"] for r in ensemble_runs]
    ef = [r["fn"] for r in ensemble_runs]
    full = {"score_mean": statistics.mean(es), "score_sd": statistics.pstdev(es), "fn_mean": statistics.mean(ef), "fn_sd": statistics.pstdev(ef),
            "ms": {t: c.ms("ensemble") for t, c in tables.items()}, "ms_members_separately_measured": separate, "runs": ensemble_runs}
    out = {"machine": machine(), "seeds": args.seeds, "n_windows": int(len(y)), "true_alarms": int(y.sum()),
           "targets": {"ms_reduction_x": TARGET_X, "score_points_below_ensemble": TARGET_POINTS, "fn": "<= the full ensemble's, same folds"},
           "full_ensemble": full, "costs": {t: c.to_dict() for t, c in tables.items()}, "chosen": chosen, "rows": rows, "runs": runs}
    path = write_json("cascade_safe.json", out)
    _plot(out, args.costs_from, path.with_suffix(".png"))
    _print(out, tables)
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


class _Table:  # a cost table read back from the JSON (ms of a component)
    def __init__(self, d):
        self.d = d

    def ms(self, name):
        return self.d[name]["ms"]


def _print(out: dict, tables) -> None:
    from models.tables import format_table

    full = out["full_ensemble"]
    print(f"\nfull ensemble on every window ({out['seeds']} fold seeds, nested thresholds): score {full['score_mean']:.2f} +- "
          f"{full['score_sd']:.2f}, missed true alarms {full['fn_mean']:.1f} +- {full['fn_sd']:.1f} of {out['true_alarms']}")
    cols = [("budget", "budget ms/stage", ""), ("bound", "miss bound", ""), ("score", "score", ""), ("d_score", "vs ens (min)", ""),
            ("fn", "missed", ""), ("d_fn", "vs ens (max)", ""), ("frac_reached_ensemble_mean", "to ensemble", ".3f"),
            ("frac_escalated_stage1_mean", "past rung 1", ".3f"), ("mean_ms_mean", "ms/window", ".3f"), ("x", "x less (min)", ""),
            ("cheap_ick0_miss_rate_outer_mean", "ICK0 miss (outer)", ".3f"), ("ok", "targets", "")]
    for t in tables:
        ch = out["chosen"][t]
        sel = [r for r in out["rows"] if r["costs"] == t and (r["budget_ms"] == ch["budget_ms"] or r["max_miss_rate"] == ch["max_miss_rate"])]
        if ch["budget_ms"] is None and ch["max_miss_rate"] is None:
            sel = [r for r in out["rows"] if r["costs"] == t]
        table = [{**r, "score": f"{r['score_mean']:.2f} +- {r['score_sd']:.2f}",
                  "d_score": f"{r['score_vs_ensemble_mean']:+.2f} ({r['score_vs_ensemble_min']:+.2f})",
                  "fn": f"{r['fn_mean']:.1f} +- {r['fn_sd']:.1f}", "d_fn": f"{r['fn_vs_ensemble_mean']:+.1f} ({r['fn_vs_ensemble_max']:+d})",
                  "x": f"{r['ms_reduction_x_mean']:.1f} ({r['ms_reduction_x_min']:.1f})",
                  "ok": "every seed" if r["meets_targets_every_seed"] else ("mean" if r["meets_targets_on_mean"] else "-")} for r in sel]
        print(f"\ncost table: {t} (full ensemble {tables[t].ms('ensemble'):.3f} ms/window); rows at the chosen budget or bound; "
              f"chosen: budget {_name(ch['budget_ms'])} ms/stage, bound {_name(ch['max_miss_rate'])} ({ch['rule']})")
        print(format_table(table, cols))


def _plot(out: dict, costs_from: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    bounds = sorted({r["bound"] for r in out["rows"]}, key=lambda b: -1 if b == "none" else -float(b))
    for k, b in enumerate(bounds):
        for table, mk, fill in ((costs_from, "o-", None), ("measured", "o--", "none")):
            rs = sorted([r for r in out["rows"] if r["bound"] == b and r["costs"] == table], key=lambda r: r["ms_reduction_x_mean"])
            x = [r["ms_reduction_x_mean"] for r in rs]
            for ax, key in ((axes[0], "score_vs_ensemble"), (axes[1], "fn_vs_ensemble")):
                ax.errorbar(x, [r[f"{key}_mean"] for r in rs], yerr=[r[f"{key}_sd"] for r in rs], fmt=mk, color=f"C{k}", mfc=fill, ms=4,
                            lw=1, capsize=2, alpha=0.9 if fill is None else 0.5,
                            label=f"bound {b}" + (f" ({costs_from} costs)" if fill is None else " (measured costs)"))
    for ax, key, target, lab in ((axes[0], "score", -TARGET_POINTS, "score - full ensemble's (points)"),
                                 (axes[1], "fn", 0, "missed true alarms - full ensemble's")):
        ax.axhline(target, color="grey", ls=":", lw=1)
        ax.axvline(TARGET_X, color="grey", ls="--", lw=1)
        from matplotlib.ticker import FixedLocator, NullLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([2, 3, 5, 10, 20, 30, 50]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels(["2", "3", "5", "10", "20", "30", "50"])
        ax.set_xlabel("x less compute per window than the full ensemble (log)")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    ch = out["chosen"][costs_from]
    sel = [r for r in out["rows"] if r["costs"] == costs_from and r["budget_ms"] == ch["budget_ms"] and r["max_miss_rate"] == ch["max_miss_rate"]]
    for r in sel:
        axes[0].plot([r["ms_reduction_x_mean"]], [r["score_vs_ensemble_mean"]], "*", ms=15, color="k", label="chosen")
        axes[1].plot([r["ms_reduction_x_mean"]], [r["fn_vs_ensemble_mean"]], "*", ms=15, color="k")
    axes[0].legend(fontsize=6, loc="lower left", ncol=2)
    fig.suptitle(f"Cascade under a bound on missed true alarms: nested CV, {out['seeds']} fold seeds, mean +- sd "
                 f"({out['n_windows']} windows, {out['true_alarms']} true alarms)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
