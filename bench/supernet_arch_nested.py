"""Which supernet architecture, chosen nested: does the choice itself generalise?

    .venv/bin/python bench/supernet_arch_nested.py [--staging artifacts/staging]

Two candidates: "A" (3 stages 24/36/48 channels, levels (1,25 %) .. (3,100 %): the registered supernet) and "B"
(2 stages 32/48, levels (1,25 %) .. (2,100 %); its d1-w075-k7 subnet has the zoo's w24-d2 shape). For each outer
fold k of the registry's folds, each candidate is cross-validated on the other 4 folds (inner 4-fold CV, the
training recipe of ``models.train_supernet``); the candidate whose best subnet scores higher there is chosen, and
that subnet, thresholded on the inner predictions, is scored on fold k with the candidate's fit on all 4 folds
(``train_supernet``'s CV fit, staged under ``<staging>/supernet_<arch>``). 5 + 20 fits per candidate, resumable.

Writes bench/results/supernet_arch_nested.json: per outer fold the inner best of each candidate and the choice;
the nested challenge score of "always A", "always B" and "choose by inner CV".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "supernet_arch_nested.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--staging", default=str(ROOT / "artifacts" / "staging"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from models import train_cnn
    from models.data import cv_folds, load_dataset, resolve_data_dir
    from models.metrics import best_threshold, challenge_score
    from models.segments import build_cache
    from models.supernet import SupernetConfig
    from models.train_supernet import SupernetTrainConfig, _job, train_supernet
    from models.zoo_eval import cv_summary

    records, _ = load_dataset(resolve_data_dir(), progress=True)
    records = [r for r in records if r.label in (0, 1)]
    folds = cv_folds([r.info for r in records], n_splits=5, seed=0)
    cache = build_cache(records, progress=True)
    arch = {"A": SupernetConfig(),
            "B": SupernetConfig(stage_widths=(32, 48), level_list=((1, 0.25), (1, 0.5), (1, 0.75), (2, 0.75), (2, 1.0)))}
    tcfg = SupernetTrainConfig()
    staging = Path(args.staging)
    outer = {}
    for a, cfg in arch.items():  # the outer fits (and a refit, which this bench does not use)
        outer[a] = train_supernet(cfg, cache, folds, staging / f"supernet_{a}", tcfg, workers=args.workers)["oof_prob"]
    inner_dir = staging / "supernet_arch_inner"
    inner_dir.mkdir(parents=True, exist_ok=True)
    train_cnn._CACHE = cache
    jobs = []
    for a, cfg in arch.items():
        for k in range(5):
            for j in range(5):
                if j != k and not (inner_dir / f"{a}.o{k}.i{j}.json").exists():
                    tr, te = np.flatnonzero((folds != k) & (folds != j)), np.flatnonzero(folds == j)
                    jobs.append((cfg.to_dict(), asdict(tcfg), f"{a}|{k}|{j}", tr, te, None, 7000 + 10 * k + j))

    def save(r):
        a, k, j = r["fold"].split("|")
        (inner_dir / f"{a}.o{k}.i{j}.json").write_text(json.dumps(r))

    t0 = time.perf_counter()
    train_cnn._run(jobs, args.workers, 1, True, "inner fits", save, job=_job)
    pos = {n: i for i, n in enumerate(cache.names)}
    y = cache.labels
    pred = {key: np.zeros(len(y), int) for key in ("A", "B", "chosen")}
    per_fold = []
    for k in range(5):
        inner = folds != k
        best = {}
        for a in arch:
            probs: dict[str, np.ndarray] = {}
            for f in sorted(inner_dir.glob(f"{a}.o{k}.i*.json")):
                r = json.loads(f.read_text())
                for n, p in r["prob"].items():
                    probs.setdefault(n, np.full(len(y), np.nan))[[pos[x] for x in r["records"]]] = p
            scores = {n: cv_summary(y[inner], p[inner], folds[inner])["score"] for n, p in probs.items()}
            n = max(scores, key=scores.get)
            best[a] = (scores[n], n, best_threshold(y[inner], probs[n][inner]), outer[a][n])
        choice = max(best, key=lambda a: best[a][0])
        for key in pred:
            _, n, t, p = best[choice if key == "chosen" else key]
            pred[key][folds == k] = p[folds == k] >= t
        per_fold.append({"outer_fold": k, "inner_best": {a: {"score": round(best[a][0], 2), "subnet": best[a][1]} for a in arch},
                         "chosen": choice})
        print(per_fold[-1], flush=True)
    result = {"per_fold": per_fold, "nested_score": {key: round(float(challenge_score(y, p)), 2) for key, p in pred.items()},
              "inner_fits": len(jobs), "inner_fit_wall_s": round(time.perf_counter() - t0, 1)}
    OUT.write_text(json.dumps(result, indent=1))
    print("nested challenge score (subnet picked on inner folds, scored on outer):", result["nested_score"])
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
