"""The supernet's subnets against the zoo's CNNs: score / latency front, and the best of each family, nested.

    .venv/bin/python bench/supernet_front.py [--registry PATH] [--seeds 5]

Every subnet and every zoo CNN of the registry version has out-of-fold predictions on the same folds (the
registry's, seed 0). Per member: cross-validated challenge score (each fold's threshold chosen on the other
folds), AUROC, latency at batch 1 and 64 (one thread, preprocessing included).

"Best of a family" is itself a choice, so it is made nested: for each outer fold, the member with the best
challenge score on the other folds is picked (and its threshold set there) and scored on the outer fold. The
outer folds are the registry's (seed 0) and 4 more record-grouped, stratified partitions of the same out-of-fold
predictions (seeds 1-4; the predictions themselves stay the seed-0 fits', a second-order leak stated here).

Writes bench/results/supernet_front.json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "supernet_front.json"


def folds_for(seed: int, base: np.ndarray, records, labels: np.ndarray) -> np.ndarray:
    """The registry's folds for seed 0; otherwise ``models.data.cv_folds`` (record-grouped, stratified by alarm
    type and label, the alarm type read from the record name's first letter, as CinC 2015 names them)."""
    if seed == 0:
        return base
    from types import SimpleNamespace

    from models.data import cv_folds

    first = {"a": "Asystole", "b": "Bradycardia", "t": "Tachycardia", "v": "Ventricular_Tachycardia", "f": "Ventricular_Flutter_Fib"}
    infos = [SimpleNamespace(alarm_type=first.get(r[0], "?"), label=int(y)) for r, y in zip(records, labels)]
    return cv_folds(infos, n_splits=5, seed=seed)


def nested_best(names, probs, y, folds) -> dict:
    """Per outer fold: the family member with the best inner challenge score, thresholded on inner, scored outer."""
    from models.metrics import best_threshold, challenge_score

    pred = np.zeros(len(y), int)
    picks = []
    for k in np.unique(folds):
        inner, outer = folds != k, folds == k
        best = None
        for n in names:
            t = best_threshold(y[inner], probs[n][inner])
            s = challenge_score(y[inner], (probs[n][inner] >= t).astype(int))
            if best is None or s > best[0]:
                best = (s, n, t)
        _, n, t = best
        picks.append(n)
        pred[outer] = probs[n][outer] >= t
    return {"score": float(challenge_score(y, pred)), "picks": picks}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry", default=str(ROOT / "artifacts" / "registry"))
    ap.add_argument("--version")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()

    from models.registry import Registry
    from models.zoo_build import aligned_oof

    reg = Registry(args.registry)
    version = args.version or reg.latest()
    profiles = [p for p in reg.profiles(version) if p["kind"] in ("cnn", "subnet")]
    fams = {k: [p["name"] for p in profiles if p["kind"] == k] for k in ("cnn", "subnet")}
    if not fams["subnet"]:
        raise SystemExit(f"registry {reg.path} {version} holds no subnet: run `holmes train --only supernet`")
    records, y, base_folds, probs = aligned_oof(profiles)
    by = {p["name"]: p for p in profiles}
    members = [{"name": n, "kind": by[n]["kind"], "score": by[n]["cv"]["score"], "auroc": by[n]["cv"]["auroc"],
                "latency_ms_b1": by[n]["latency_ms"]["1"], "latency_ms_b64": by[n]["latency_ms"]["64"], "macs": by[n]["macs"],
                "params": by[n]["params"]} for n in by]
    nested = {k: [] for k in fams}
    for seed in range(args.seeds):
        f = folds_for(seed, base_folds, records, y)
        for k, names in fams.items():
            nested[k].append({"seed": seed, **nested_best(names, probs, y, f)})
    summary = {}
    for k, runs in nested.items():
        sc = np.array([r["score"] for r in runs])
        picked = [n for r in runs for n in r["picks"]]
        summary[k] = {"nested_best_score_mean": round(float(sc.mean()), 2), "nested_best_score_std": round(float(sc.std()), 2),
                      "scores": [round(float(s), 2) for s in sc],
                      "picked": {n: picked.count(n) for n in sorted(set(picked))},
                      "picked_latency_ms_b1_mean": round(float(np.mean([by[n]["latency_ms"]["1"] for n in picked])), 4),
                      "best_by_cv_score": max(fams[k], key=lambda n: by[n]["cv"]["score"]),
                      "best_by_auroc": max(fams[k], key=lambda n: by[n]["cv"]["auroc"])}
    diff = np.array([a["score"] - b["score"] for a, b in zip(nested["subnet"], nested["cnn"])])
    result = {"registry_version": version, "n_records": len(records), "members": members, "nested": nested, "summary": summary,
              "subnet_minus_cnn": {"mean": round(float(diff.mean()), 2), "std": round(float(diff.std()), 2),
                                   "per_seed": [round(float(d), 2) for d in diff]}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    plot(result, OUT.with_suffix(".png"))
    print(f"{'family':<8} {'nested best score':>18} {'per seed':<40} {'picked latency b1':>18}")
    for k in ("cnn", "subnet"):
        s = summary[k]
        print(f"{k:<8} {s['nested_best_score_mean']:>10.2f} +/- {s['nested_best_score_std']:<4.2f} {str(s['scores']):<40} "
              f"{s['picked_latency_ms_b1_mean']:>14.3f} ms")
    print(f"subnet - cnn, same folds: {result['subnet_minus_cnn']}")
    for k in ("cnn", "subnet"):
        b = by[summary[k]["best_by_cv_score"]]
        print(f"best {k} by CV score: {b['name']} {b['cv']['score']:.1f} AUROC {b['cv']['auroc']:.3f} b1 {b['latency_ms']['1']:.2f} ms")
    print(f"wrote {OUT} and {OUT.with_suffix('.png')}")
    return 0


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "score", "CV challenge score"), (axes[1], "auroc", "CV AUROC")):
        for kind, marker, color in (("cnn", "o", "tab:blue"), ("subnet", "^", "tab:red")):
            ms = [m for m in result["members"] if m["kind"] == kind]
            xs = np.array([m["latency_ms_b1"] for m in ms])
            ys = np.array([m[key] for m in ms])
            ax.scatter(xs, ys, marker=marker, color=color, label="zoo CNNs (24 separate models)" if kind == "cnn" else
                       "supernet subnets (one set of weights)", alpha=0.8)
            order = np.argsort(xs)
            front, best = [], -np.inf
            for i in order:
                if ys[i] > best:
                    front.append(i)
                    best = ys[i]
            ax.step(xs[front], ys[front], where="post", color=color, alpha=0.5)
        ax.set_xlabel("latency, batch 1, one thread (ms)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    s = result["summary"]
    fig.suptitle(f"registry {result['registry_version']}: nested best-of-family score, subnets "
                 f"{s['subnet']['nested_best_score_mean']:.1f} ± {s['subnet']['nested_best_score_std']:.1f} vs zoo CNNs "
                 f"{s['cnn']['nested_best_score_mean']:.1f} ± {s['cnn']['nested_best_score_std']:.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
