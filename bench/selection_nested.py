"""Ensemble rules and calibration compared on nested, record-grouped CV over several fold seeds.

    .venv/bin/python bench/selection_nested.py [--seeds 5] [--rules zoo,stacking,...] [--out bench/results/selection_nested]

Reads the registry's out-of-fold predictions (no model is refitted) and runs ``holmes.compose.nested`` for
every rule and fold seed: subset / weights / stacker, calibration map and thresholds (one, or one per alarm
type) chosen on inner folds, scored on outer folds. Writes ``<out>.json`` (per seed and mean +- sd) and
``<out>.png`` (score per rule with its spread; reliability diagram of the winner, raw and calibrated).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _mean_sd(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)}


def main(argv=None) -> int:
    from tqdm import tqdm

    from holmes.compose.nested import RULES, figures, nested_rule
    from holmes.compose.table import ZooTable
    from models.data import list_records, resolve_data_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--registry")
    ap.add_argument("--data")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "selection_nested"))
    args = ap.parse_args(argv)
    rules = [r for r in args.rules.split(",") if r]
    table, src = ZooTable.from_registry(args.registry)
    types_by = {i.name: i.alarm_type for i in list_records(resolve_data_dir(args.data))}
    types = [types_by[r] for r in table.records]
    y = np.asarray(table.y).astype(int)
    t0 = time.perf_counter()
    runs: dict[str, list] = {r: [] for r in rules}
    keep: dict[str, dict] = {}
    with tqdm(total=len(rules) * args.seeds, desc="nested rule x seed", unit="run") as bar:
        for seed in range(args.seeds):
            for rule in rules:
                bar.set_postfix_str(f"{rule} seed {seed}")
                out = nested_rule(rule, table, types, seed)
                runs[rule].append(figures(y, types, out))
                if seed == 0:
                    keep[rule] = out
                bar.update()
    summary = {}
    for rule, per in runs.items():
        row = {}
        for mode in ("global", "type"):
            row[f"score_{mode}_thr"] = _mean_sd([p[mode]["score"] for p in per])
            row[f"fn_{mode}_thr"] = _mean_sd([p[mode]["fn"] for p in per])
            row[f"tpr_{mode}_thr"] = _mean_sd([p[mode]["tpr"] for p in per])
            row[f"tnr_{mode}_thr"] = _mean_sd([p[mode]["tnr"] for p in per])
            row[f"per_type_{mode}_thr"] = {k: _mean_sd([p[mode]["per_type"][k] for p in per]) for k in per[0][mode]["per_type"]}
        for k in ("auroc", "auroc_raw", "ece", "ece_raw"):
            row[k] = _mean_sd([p[k] for p in per])
        methods: dict[str, int] = {}
        for p in per:
            for m, c in p["methods"].items():
                methods[m] = methods.get(m, 0) + c
        row["calibration_chosen"] = methods
        summary[rule] = row
    best = max(((r, m) for r in rules for m in ("global", "type")), key=lambda rm: summary[rm[0]][f"score_{rm[1]}_thr"]["mean"])
    doc = {
        "command": "bench/selection_nested.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "registry": src, "n_records": len(y), "seeds": args.seeds, "wall_s": round(time.perf_counter() - t0, 1),
        "winner": {"rule": best[0], "thresholds": best[1]}, "summary": summary, "per_seed": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=float))
    _plot(out.with_suffix(".png"), summary, rules, y, keep[best[0]], best)
    print(f"nested CV on {len(y)} records, {args.seeds} fold seeds, registry {src['version']} ({doc['wall_s']} s)")
    print(f"{'rule':14s} {'score 1 thr':>14s} {'score per type':>15s} {'AUROC':>7s} {'ECE raw':>8s} {'ECE cal':>8s} {'FN':>6s}  calibration")
    for r in rules:
        s = summary[r]
        g, ty = s["score_global_thr"], s["score_type_thr"]
        print(f"{r:14s} {g['mean']:7.2f} +- {g['sd']:4.2f} {ty['mean']:8.2f} +- {ty['sd']:4.2f} {s['auroc']['mean']:7.3f} "
              f"{s['ece_raw']['mean']:8.3f} {s['ece']['mean']:8.3f} {s['fn_global_thr']['mean']:6.1f}  {s['calibration_chosen']}")
    print(f"winner: {best[0]} with {'per-type' if best[1] == 'type' else 'one'} threshold")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


def _plot(path: Path, summary: dict, rules, y, out: dict, best) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.calibration import reliability

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(rules))
    for off, mode, label in ((-0.18, "global", "one threshold"), (0.18, "type", "per-type thresholds")):
        m = [summary[r][f"score_{mode}_thr"]["mean"] for r in rules]
        e = [summary[r][f"score_{mode}_thr"]["sd"] for r in rules]
        a.bar(x + off, m, 0.36, yerr=e, capsize=3, label=label)
    a.set_xticks(x, rules, rotation=20)
    lo = min(summary[r]["score_global_thr"]["mean"] for r in rules)
    a.set_ylim(max(0, lo - 10), 100)
    a.set_ylabel("challenge score (nested CV, mean +- sd over fold seeds)")
    a.legend(loc="upper left")
    a.set_title("ensemble rules: every choice on inner folds")
    for key, label in (("raw", "raw"), ("cal", "calibrated")):
        r = reliability(y, out[key])
        ok = np.asarray(r["n"]) > 0
        b.plot(np.asarray(r["mean_p"])[ok], np.asarray(r["frac_true"])[ok], "o-", label=f"{best[0]}, {label}")
    b.plot([0, 1], [0, 1], "k:", lw=1)
    b.set_xlabel("predicted P(true alarm), 10 bins")
    b.set_ylabel("observed fraction of true alarms")
    b.set_title("reliability of the winning rule (outer folds, seed 0)")
    b.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
