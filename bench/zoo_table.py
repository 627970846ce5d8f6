"""The model zoo figure: every member's cost and CV accuracy, the ensembles, the training time.

    .venv/bin/python bench/zoo_table.py [--registry PATH] [--version vNNNN] [--out bench/results/zoo]

Reads the registry (profiles were measured by `holmes train`: MACs, latency at batch 1/8/64 on one
thread, out-of-fold predictions on the shared 5 folds) and writes ``<out>.json`` and ``<out>.png`` (MACs vs
CV AUROC, one point per member, ensembles as horizontal lines). Scores use fold thresholds chosen on the
other folds. "best single CNN" is the best of many by CV score, so it is optimistic; the ensembles are
fixed rules (mean of all CNNs; mean of that and each feature model) and are not selected.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from holmes.commands.zoo import format_table, table_rows
    from models.registry import Registry
    from models.zoo_build import aligned_oof
    from models.zoo_eval import cv_summary, ensemble_prob

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry")
    ap.add_argument("--version")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "zoo"))
    args = ap.parse_args(argv)
    reg = Registry(args.registry)
    v = args.version or reg.latest()
    idx = reg.index(v)
    profiles = reg.profiles(v)
    rows = table_rows(reg, v)
    cnn = [p for p in profiles if p["kind"] == "cnn"]
    feat = [p for p in profiles if p["kind"] == "features"]
    subnets = [p for p in profiles if p["kind"] == "subnet"]
    best_subnet = max(subnets, key=lambda p: (p["cv"]["score"], p["cv"]["auroc"])) if subnets else None
    best_cnn = max(cnn, key=lambda p: (p["cv"]["score"], p["cv"]["auroc"])) if cnn else None
    best_feat = max(feat, key=lambda p: (p["cv"]["score"], p["cv"]["auroc"])) if feat else None
    ens = reg.ensembles(v)
    summary = {
        "version": v,
        "n_members": len(profiles),
        "n_cnn": len(cnn),
        "macs_range": [min(p["macs"] for p in cnn), max(p["macs"] for p in cnn)] if cnn else None,
        "best_single_cnn": {"name": best_cnn["name"], **best_cnn["cv"]} if best_cnn else None,
        "best_feature_model": {"name": best_feat["name"], **best_feat["cv"]} if best_feat else None,
        "n_subnets": len(subnets),
        "best_subnet": {"name": best_subnet["name"], **best_subnet["cv"]} if best_subnet else None,
        "ensembles": {k: e["cv"] for k, e in ens.items()},
        "timings": idx.get("timings", {}),
    }
    if cnn and feat:  # the CNN ensemble next to each feature model, one pair at a time
        records, labels, folds, probs = aligned_oof(profiles)
        cnn_p = ensemble_prob(probs[p["name"]] for p in cnn)
        summary["cnn_ensemble_plus_one_feature_model"] = {
            p["name"]: cv_summary(labels, ensemble_prob([cnn_p, probs[p["name"]]]), folds) for p in feat
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))

    print(format_table(rows))
    print()
    if summary["macs_range"]:
        lo, hi = summary["macs_range"]
        print(f"{len(cnn)} CNN members, MACs {lo / 1e6:.2f}M .. {hi / 1e6:.2f}M ({hi / lo:.1f}x)")
    for label, key in (("best single CNN", "best_single_cnn"), ("best feature model", "best_feature_model"),
                       ("best supernet subnet", "best_subnet")):
        s = summary[key]
        if s:
            print(f"{label:<28} {s['name']:<26} score {s['score']:6.2f}  AUROC {s['auroc']:.4f}")
    for name, s in summary["ensembles"].items():
        print(f"{'ensemble':<28} {name:<26} score {s['score']:6.2f}  AUROC {s['auroc']:.4f}")
    for name, s in summary.get("cnn_ensemble_plus_one_feature_model", {}).items():
        print(f"{'cnn-ensemble + ' + name:<55} score {s['score']:6.2f}  AUROC {s['auroc']:.4f}")
    if summary["timings"]:
        print("training time:", ", ".join(f"{k} {v}" for k, v in summary["timings"].items()))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    markers = {"ecg": "o", "ecgpulse": "s", "all": "^"}
    for group, marker in markers.items():
        pts = [p for p in cnn if p["config"]["inputs"] == group]
        if pts:
            ax.scatter([p["macs"] / 1e6 for p in pts], [p["cv"]["auroc"] for p in pts], marker=marker, s=[12 + p["config"]["depth"] * 10 for p in pts],
                       label=f"CNN inputs={group} (size = depth)", alpha=0.8)
    if subnets:
        ax.scatter([p["macs"] / 1e6 for p in subnets], [p["cv"]["auroc"] for p in subnets], marker="x", color="black",
                   s=[12 + p["config"]["subnet"]["depth"] * 10 for p in subnets], label="supernet subnets (one set of weights)")
    colors = iter(["tab:red", "tab:purple", "tab:brown", "tab:gray"])
    for name, e in ens.items():
        ax.axhline(e["cv"]["auroc"], color=next(colors), ls="--", lw=1, label=f"{name} ({e['cv']['auroc']:.3f}, score {e['cv']['score']:.1f})")
    for p in feat:
        ax.axhline(p["cv"]["auroc"], color="tab:olive", ls=":", lw=1)
    if best_feat:
        ax.plot([], [], color="tab:olive", ls=":", label=f"feature models (best {best_feat['name']} {best_feat['cv']['auroc']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("multiply-accumulates per 16 s window (millions, log)")
    ax.set_ylabel("5-fold CV AUROC (out of fold)")
    ax.set_title(f"HOLMES-ICU model zoo {v}: cost vs accuracy (CinC 2015, {len(cnn[0]['oof']['records']) if cnn else '?'} records)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
