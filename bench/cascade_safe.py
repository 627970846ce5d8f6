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

The costly rung is the registry's ``cnn+features-ensemble`` (28 members, rule zoo) by default. With ``--plan PLAN
--ensemble floor|ROW`` it is that row of the serving plan (``EnsembleRef.from_plan``: the members and rule the
service answers with under that name, which the served cascade asks for by name): the "full ensemble" every
figure is compared with is then that row on every window, its OOF probability the row's members' registry OOF
combined by the row's rule, and the fixed cost table is ``--costs-from``'s with only the costly rung re-priced:
the row's members in process (preprocessing and features shared, batch 64, one thread), measured once in this
run or given by ``--ensemble-ms``; ``holmes cascade fit --plan PLAN --ensemble ROW --costs-from v0007
--ensemble-ms MS`` then fits the served cascade with the very same table. Results go to cascade_safe_plan.json.
A plan row can be much cheaper than the 28-member ensemble, so ">= 10x less compute" may be out of reach (the
JSON's ``compute_cap_x``: the ensemble's price over the cheapest path, the quick rung alone); when no row meets
the compute target the choice keeps the score and miss targets and takes the row that saves the most compute
(every seed, else the mean), then fewest worst-seed misses, then best worst-seed score; if no row meets the miss
target within the score target either, it takes, among the rows within the score target on the mean, the one the
first rule orders first (fewest worst-seed misses, best worst-seed score, most compute saved), flagged
``meets_targets: false`` in ``chosen``.

    .venv/bin/python bench/cascade_safe.py [--seeds 5] [--bounds none 0.1 0.07 0.05 0.03] [--budgets 0.16 ... none]
    .venv/bin/python bench/cascade_safe.py --plan deploy/plan.json --ensemble floor [--ensemble-ms MS]
    .venv/bin/python bench/cascade_safe.py --plot-only [--plan ...]   # redraw the PNG and the table from the JSON

Writes bench/results/cascade_safe.json (cascade_safe_plan.json with --plan) and .png and prints a short table
(mean and sd over the seeds).
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
    ap.add_argument("--plan", help="take the costly rung from this serving plan (e.g. deploy/plan.json)")
    ap.add_argument("--ensemble", help="costly rung: with --plan 'floor' (default) or a row name; else a registry ensemble row "
                                       "(default cnn+features-ensemble)")
    ap.add_argument("--ensemble-ms", type=float, help="price of the costly rung in ms/window instead of measuring it in this run")
    ap.add_argument("--out", help="results file name under bench/results (default cascade_safe.json, cascade_safe_plan.json with --plan)")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG and reprint the table from the results JSON")
    ap.add_argument("--all-rows", action="store_true", help="print every budget x bound row, not only those at the chosen budget or bound")
    args = ap.parse_args()
    out_name = args.out or ("cascade_safe_plan.json" if args.plan else "cascade_safe.json")
    if args.plot_only:
        import json

        from _servebench import RESULTS

        out = json.loads((RESULTS / out_name).read_text())
        fixed = out.get("fixed_table", args.costs_from)
        _plot(out, fixed, (RESULTS / out_name).with_suffix(".png"))
        _print(out, {t: _Table(c) for t, c in out["costs"].items()}, args.all_rows)
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
    if args.plan:
        ens = EnsembleRef.from_plan(args.plan, args.ensemble or "floor")
    else:
        ens = EnsembleRef.from_registry(args.ensemble or "cnn+features-ensemble")
    print(f"costly rung: {ens.source()} ({len(ens.members)} members, rule {ens.rule})")
    data = build_data(recs, ens, progress=True)
    if args.ensemble_ms is None:
        ens_cost = measure_ensemble(ens, recs)
        separate = ens_cost.pop("ms_separate")
    else:
        from unfold.fit import ensemble_cost

        ens_cost, separate = ensemble_cost(ens, ms=args.ensemble_ms), None
    prior = load(version=args.costs_from)
    fixed_table, fixed = args.costs_from, prior.cascade.costs
    if (prior.ensemble.members, prior.ensemble.rule) != (ens.members, ens.rule):  # the cheap rungs' fixed costs, this rung's price
        from unfold.fit import with_ensemble

        fixed_table, fixed = f"{args.costs_from}+{ens.name}", with_ensemble(fixed, ens, ens_cost)
    tables = {"measured": cost_table(data, fit_rungs(data, np.ones(len(data.y), dtype=bool), args.feature_model), ens_cost),
              fixed_table: fixed}
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
    chosen = {table: choose([r for r in rows if r["costs"] == table]) for table in tables}
    es = [r["score"] for r in ensemble_runs]
    ef = [r["fn"] for r in ensemble_runs]
    full = {"score_mean": statistics.mean(es), "score_sd": statistics.pstdev(es), "fn_mean": statistics.mean(ef), "fn_sd": statistics.pstdev(ef),
            "ms": {t: c.ms("ensemble") for t, c in tables.items()}, "ms_members_separately_measured": separate, "runs": ensemble_runs}
    full["name"] = ens.name
    if ens.is_plan_row:
        from holmes.compose.plan import Plan

        spec = Plan.load(ROOT / ens.plan).get(ens.name)
        full["plan_row_stated"] = {"score": spec.score, "auroc": spec.auroc, "threshold": spec.threshold,
                                   "note": "the plan's own nested figures (subset search and threshold chosen without the fold scored)"}
    cheapest = {t: c.ms("quick_features") + c.ms("quick-trees") for t, c in tables.items()}
    out = {"machine": machine(), "seeds": args.seeds, "n_windows": int(len(y)), "true_alarms": int(y.sum()),
           "ensemble": ens.to_dict(), "ensemble_source": ens.source(), "fixed_table": fixed_table,
           "targets": {"ms_reduction_x": TARGET_X, "score_points_below_ensemble": TARGET_POINTS, "fn": "<= the full ensemble's, same folds"},
           "compute_cap_x": {t: c.ms("ensemble") / cheapest[t] for t, c in tables.items()},
           "full_ensemble": full, "costs": {t: c.to_dict() for t, c in tables.items()}, "chosen": chosen, "rows": rows, "runs": runs,
           "command": " ".join(["bench/cascade_safe.py"] + sys.argv[1:]),
           "fit_command": ("holmes cascade fit" + (f" --plan {ens.plan} --ensemble {args.ensemble or 'floor'}" if ens.is_plan_row
                                                    else f" --ensemble {ens.name}")
                           + f" --costs-from {args.costs_from}" + (f" --ensemble-ms {fixed.ms('ensemble'):.6g}" if fixed_table != args.costs_from else "")
                           + (f" --budget-ms {_name(chosen[fixed_table]['budget_ms'])} --max-miss-rate {_name(chosen[fixed_table]['max_miss_rate'])}"
                              if chosen[fixed_table]["rule"] != "no row meets the targets" else ""))}
    path = write_json(out_name, out)
    _plot(out, fixed_table, path.with_suffix(".png"))
    _print(out, tables, args.all_rows)
    print(f"wrote {path} and {path.with_suffix('.png')}\nfit the served cascade with the fixed table: {out['fit_command']}")
    return 0


def choose(rows: list[dict]) -> dict:
    """The served setting among one cost table's rows: the targets met on every seed, else on the mean (fewest worst-seed
    misses, then best worst-seed score, then most compute saved); if no row meets the compute target, the rows that meet
    the score and miss targets (every seed, else the mean), the most compute saved first, then fewest worst-seed misses,
    then best worst-seed score; if no row meets the miss target within the score target either, the rows within the score
    target on the mean, ordered as in the first case (the choice is then flagged ``meets_targets: False``)."""
    for flag, where in (("meets_targets_every_seed", "every seed"), ("meets_targets_on_mean", "mean over seeds")):
        cand = [r for r in rows if r[flag]]
        if cand:
            best = max(cand, key=lambda r: (-r["fn_vs_ensemble_max"], round(r["score_vs_ensemble_min"], 6), r["ms_reduction_x_mean"]))
            return {"rule": f"targets met on {where}; fewest worst-seed misses, then best worst-seed score, then most compute saved",
                    "budget_ms": best["budget_ms"], "max_miss_rate": best["max_miss_rate"], "meets_compute_target": True, "meets_targets": True}
    safe = (("every seed", lambda r: r["score_vs_ensemble_min"] >= -TARGET_POINTS and r["fn_vs_ensemble_max"] <= 0),
            ("mean over seeds", lambda r: r["score_vs_ensemble_mean"] >= -TARGET_POINTS and r["fn_vs_ensemble_mean"] <= 0))
    for where, ok in safe:
        cand = [r for r in rows if ok(r)]
        if cand:
            best = max(cand, key=lambda r: (round(r["ms_reduction_x_mean"], 6), -r["fn_vs_ensemble_max"], round(r["score_vs_ensemble_min"], 6)))
            return {"rule": f"no row saves {TARGET_X:g}x compute; score and miss targets met on {where}: most compute saved, then fewest "
                            f"worst-seed misses, then best worst-seed score", "budget_ms": best["budget_ms"], "max_miss_rate": best["max_miss_rate"],
                    "meets_compute_target": False, "meets_targets": False, "ms_reduction_x_mean": best["ms_reduction_x_mean"]}
    cand = [r for r in rows if r["score_vs_ensemble_mean"] >= -TARGET_POINTS]
    if cand:  # the miss target out of reach too: keep the score target (mean) and put the costliest error first, as above
        best = max(cand, key=lambda r: (-r["fn_vs_ensemble_max"], round(r["score_vs_ensemble_min"], 6), r["ms_reduction_x_mean"]))
        return {"rule": f"targets NOT met: no row saves {TARGET_X:g}x compute, none misses no more true alarms than the ensemble within "
                        f"{TARGET_POINTS:g} point of its score; among the rows within {TARGET_POINTS:g} point of its score on the mean: fewest "
                        "worst-seed misses, then best worst-seed score, then most compute saved",
                "budget_ms": best["budget_ms"], "max_miss_rate": best["max_miss_rate"], "meets_compute_target": False, "meets_targets": False}
    return {"rule": "no row meets the targets", "budget_ms": None, "max_miss_rate": None, "meets_compute_target": False}


class _Table:  # a cost table read back from the JSON (ms of a component)
    def __init__(self, d):
        self.d = d

    def ms(self, name):
        return self.d[name]["ms"]


def _print(out: dict, tables, full_table: bool = False) -> None:
    from models.tables import format_table

    full = out["full_ensemble"]
    print(f"\nfull ensemble {full.get('name', 'cnn+features-ensemble')} on every window ({out['seeds']} fold seeds, nested thresholds): "
          f"score {full['score_mean']:.2f} +- {full['score_sd']:.2f}, missed true alarms {full['fn_mean']:.1f} +- {full['fn_sd']:.1f} "
          f"of {out['true_alarms']}")
    if "compute_cap_x" in out:
        print("most compute a cascade can save (every window stops at the quick rung): "
              + ", ".join(f"{t} {x:.1f}x" for t, x in out["compute_cap_x"].items()))
    cols = [("budget", "budget ms/stage", ""), ("bound", "miss bound", ""), ("score", "score", ""), ("d_score", "vs ens (min)", ""),
            ("fn", "missed", ""), ("d_fn", "vs ens (max)", ""), ("frac_reached_ensemble_mean", "to ensemble", ".3f"),
            ("frac_escalated_stage1_mean", "past rung 1", ".3f"), ("mean_ms_mean", "ms/window", ".3f"), ("x", "x less (min)", ""),
            ("cheap_ick0_miss_rate_outer_mean", "ICK0 miss (outer)", ".3f"), ("ok", "targets", "")]
    for t in tables:
        ch = out["chosen"][t]
        sel = [r for r in out["rows"] if r["costs"] == t and (r["budget_ms"] == ch["budget_ms"] or r["max_miss_rate"] == ch["max_miss_rate"])]
        if full_table:
            sel = [r for r in out["rows"] if r["costs"] == t]
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
        ticks = [1, 1.5, 2, 3, 5, 10, 20, 30, 50]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel("x less compute per window than the full ensemble (log)")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    ch = out["chosen"][costs_from]
    sel = [r for r in out["rows"] if r["costs"] == costs_from and r["budget_ms"] == ch["budget_ms"] and r["max_miss_rate"] == ch["max_miss_rate"]]
    for r in sel:
        axes[0].plot([r["ms_reduction_x_mean"]], [r["score_vs_ensemble_mean"]], "*", ms=15, color="k", label="chosen")
        axes[1].plot([r["ms_reduction_x_mean"]], [r["fn_vs_ensemble_mean"]], "*", ms=15, color="k")
    axes[0].legend(fontsize=6, loc="lower left", ncol=2)
    name = out["full_ensemble"].get("name", "cnn+features-ensemble")
    src = out.get("ensemble_source", {})
    what = f"plan row {name} of {src['plan']}" if src.get("kind") == "plan_row" else name
    fig.suptitle(f"Cascade under a bound on missed true alarms, costly rung {what}\nnested CV, {out['seeds']} fold seeds, mean +- sd "
                 f"({out['n_windows']} windows, {out['true_alarms']} true alarms)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
