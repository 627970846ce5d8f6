"""Ensemble search on the real zoo: the surrogate-guided genetic search against exhaustive search (on sub-zoos
small enough to enumerate, and extrapolated to the full zoo), greedy baselines and random search.

    .venv/bin/python bench/compose_search.py [--registry DIR] [--latency-model bench/results/serve_profile.json]
    -> bench/results/compose_search.json, compose_search.png

Scores are OOF AUROC of the mean-probability ensemble; latency is the model's p99 at 64 beds (1 request of
64 windows per second). Exhaustive time on the full zoo is the measured time per subset on the sub-zoos
times 2^M - 1 (enumerating 2^M subsets is the point of not doing it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servebench import RESULTS, machine, write_json  # noqa: E402

BUDGETS = (50, 100, 250, 500, 1000)
METHODS = ("genetic", "greedy_accuracy", "greedy_latency", "random")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry")
    ap.add_argument("--version")
    ap.add_argument("--latency-model", default=str(RESULTS / "serve_profile.json"))
    ap.add_argument("--beds", type=int, default=64)
    ap.add_argument("--sub-size", type=int, default=14, help="members per sub-zoo (exhaustive: 2^size subsets)")
    ap.add_argument("--sub-zoos", type=int, default=4, help="random sub-zoos")
    ap.add_argument("--out", default="compose_search.json")
    args = ap.parse_args(argv)

    from holmes.compose import ZooTable, search
    from holmes.queueing import LatencyModel, Load

    table, reg = ZooTable.from_registry(args.registry, args.version)
    table = table.subset([n for n, k in zip(table.names, table.kinds) if k != "ensemble"])
    lm_path = Path(args.latency_model)
    model = LatencyModel.from_dict(json.loads(lm_path.read_text())["latency_model"]) if lm_path.is_file() else LatencyModel()
    load = Load(args.beds)
    M = table.n_members
    rng = np.random.default_rng(0)
    sub_size = min(args.sub_size, M)

    sub_rows = []
    for z in range(args.sub_zoos if sub_size < M else 1):
        names = sorted(rng.choice(table.names, size=sub_size, replace=False).tolist()) if sub_size < M else list(table.names)
        sub = table.subset(names)
        for budget in tqdm(BUDGETS, desc=f"sub-zoo {z + 1} ({sub_size} members)", unit="budget"):
            ex = search(sub, budget, load, model, "exhaustive", max_members=22)
            row = {"zoo": z, "budget_ms": budget, "exhaustive": {"auroc": ex.auroc, "s": ex.search_s, "evaluated": ex.n_evaluated, "found": ex.found}}
            for meth in METHODS:
                r = search(sub, budget, load, model, meth)
                row[meth] = {"auroc": r.auroc, "s": r.search_s, "evaluated": r.n_evaluated, "found": r.found,
                             "gap": (ex.auroc - r.auroc) if ex.found and r.found else None}
            sub_rows.append(row)
    per_subset_s = float(np.median([r["exhaustive"]["s"] for r in sub_rows])) / (2**sub_size - 1)

    full_rows = []
    for budget in tqdm(BUDGETS, desc=f"full zoo ({M} members)", unit="budget"):
        row = {"budget_ms": budget}
        for meth in METHODS:
            r = search(table, budget, load, model, meth)
            row[meth] = {"auroc": r.auroc, "s": r.search_s, "evaluated": r.n_evaluated, "latency_ms": r.latency_ms,
                         "members": np.asarray(table.names)[r.mask].tolist()}
        if M <= 20:
            t0 = time.perf_counter()
            ex = search(table, budget, load, model, "exhaustive", max_members=22)
            row["exhaustive"] = {"auroc": ex.auroc, "s": time.perf_counter() - t0, "measured": True}
        else:
            row["exhaustive"] = {"auroc": None, "s": per_subset_s * (2**M - 1), "measured": False}
        row["speedup_vs_exhaustive"] = row["exhaustive"]["s"] / row["genetic"]["s"]
        full_rows.append(row)

    gaps = [r["genetic"]["gap"] for r in sub_rows if r["genetic"]["gap"] is not None]
    summary = {
        "zoo_members": M, "sub_zoo_members": sub_size, "sub_zoos": len({r["zoo"] for r in sub_rows}),
        "genetic_max_gap_auroc": max(gaps) if gaps else None, "genetic_within_0005": all(g <= 0.005 for g in gaps),
        "genetic_full_zoo_max_s": max(r["genetic"]["s"] for r in full_rows),
        "min_speedup_vs_exhaustive": min(r["speedup_vs_exhaustive"] for r in full_rows),
        "exhaustive_per_subset_us": per_subset_s * 1e6,
    }
    path = write_json(args.out, {"registry": reg, "machine": machine(), "latency_model": model.to_dict(), "load": {"beds": args.beds},
                                 "summary": summary, "sub_zoos": sub_rows, "full_zoo": full_rows})
    print(f"\nsub-zoos ({sub_size} members, exhaustive = {2**sub_size - 1} subsets): AUROC gap to the exhaustive optimum")
    print(f"{'budget':>6} " + " ".join(f"{m:>16}" for m in METHODS))
    for b in BUDGETS:
        rs = [r for r in sub_rows if r["budget_ms"] == b]
        cells = []
        for m in METHODS:
            g = [r[m]["gap"] for r in rs if r[m]["gap"] is not None]
            cells.append(f"{max(g):16.4f}" if g else f"{'-':>16}")
        print(f"{b:6d} " + " ".join(cells))
    print(f"\nfull zoo ({M} members): AUROC found and search time")
    print(f"{'budget':>6} {'genetic':>8} {'s':>6} {'evals':>6} {'greedy_acc':>10} {'greedy_lat':>10} {'random':>8} {'exhaustive s':>13} {'speedup':>8}")
    for r in full_rows:
        ex = r["exhaustive"]
        f = lambda v: f"{v:.4f}" if v == v and v is not None else "-"  # noqa: E731
        print(f"{r['budget_ms']:6d} {f(r['genetic']['auroc']):>8} {r['genetic']['s']:6.2f} {r['genetic']['evaluated']:6d} {f(r['greedy_accuracy']['auroc']):>10} "
              f"{f(r['greedy_latency']['auroc']):>10} {f(r['random']['auroc']):>8} {ex['s']:12.3g}{'' if ex['measured'] else '*'} {r['speedup_vs_exhaustive']:8.3g}")
    print("* extrapolated: measured time per subset on the sub-zoos x (2^M - 1)")
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    _plot(sub_rows, full_rows, RESULTS / args.out.replace(".json", ".png"))
    return 0


def _plot(sub_rows, full_rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, m in enumerate(METHODS):
        xs, ys = [], []
        for r in sub_rows:
            if r[m]["gap"] is not None:
                xs.append(r["budget_ms"] * (1 + 0.06 * (i - 1.5)))
                ys.append(r[m]["gap"])
        ax1.scatter(xs, ys, label=m, s=18)
    ax1.axhline(0.005, color="k", ls=":", lw=1, label="0.005")
    ax1.set_xscale("log")
    ax1.set_xlabel("latency budget (ms)")
    ax1.set_ylabel("AUROC below the exhaustive optimum")
    ax1.set_title("Sub-zoos: gap to exhaustive search")
    ax1.legend(fontsize=8)
    b = [r["budget_ms"] for r in full_rows]
    for m in METHODS:
        ax2.plot(b, [r[m]["auroc"] for r in full_rows], "o-", label=m)
    ax2.set_xscale("log")
    ax2.set_xlabel("latency budget (ms)")
    ax2.set_ylabel("OOF AUROC of the ensemble found")
    ax2.set_title("Full zoo")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
