"""The served verdict as a bag: the mean of B whole verdict pipelines, each fitted on a different 80 % of the records.

    .venv/bin/python bench/verdict_bag.py [--data DIR] [--draws 2000]

Each record's nested outer-fold verdict of one fold seed comes from one whole served procedure (``bench/vt_spectral.py``'s
``served_verdict``: features-typed on the batch and the incremental features, K and the map, the definition gate, the VT
re-scorer), every part fitted on the 4 other folds' records. Over the 10 fold seeds of the two kept sets (0..4 and
5..9; ``bench/shift_nested.py`` keeps their fold predictions), a record has 10 such verdicts, from 10 pipelines, none of
which saw it, each fitted on a different ~400 of the other 500 records. Their mean over B of the seeds is what a bag of B
pipelines fitted on 80 % subsets would publish for that record: the figure of that mean is a nested estimate of the bag
(nothing in it is chosen on a scored record; the bag's members see 400 records, as the single pipeline's nested figure
does, where the served single pipeline is fitted on all 501).

**How this came about (said before any figure here).** ``bench/verdict_errors.py`` lists the errors of the verdict
averaged over fold seeds 0..4; its counts (63 false alarms passed, 4 true ones missed) read better than any single fold
seed's (FP 59-78, FN 5-7). That is the bag. Nothing is chosen here: every B from 1 to 10 is reported, over every set of
B of the 10 fold seeds (the mean and spread over those sets), paired against the mean of its members' single figures.
The served bag (``models.verdict_bag``) has B = 5: the registry's 5 folds give 5 training parts (each 80 % of the
records, two of them sharing 60 %), fixed before this bench was run, not read off it.

Writes bench/results/verdict_bag.json (per B: the bag's score, AUROC, ECE, per type; its paired gain over its members;
the two disjoint 5-bags 0..4 and 5..9; the gain over record draws, ``bench/verdict_uncertainty.py``'s paired
bootstrap, and the bag's range on a new set of 249 alarms, its bootstrap) and verdict_bag.png (score against B).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from definition_gates import load_bench  # noqa: E402
from feature_sets import _row  # noqa: E402
from verdict_uncertainty import bootstrap, paired  # noqa: E402
from vt_spectral import served_verdict  # noqa: E402
from models.data import ALARM_TYPES  # noqa: E402

GOAL = 84.0
NEW_SET = 249  # alarms in a new set, the size of the first wave's outside set


def fold_seed_verdicts(data: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """([10, records] the served verdict of fold seeds 0..9, labels, alarm types, record names)."""
    P, ref = [], None
    for first in (0, 5):
        b = load_bench(data, 5, first)
        if ref is not None and b.names != ref.names:
            raise SystemExit("the two fold-seed sets read different records")
        P.append(served_verdict(b)[0])
        ref = b
    return np.vstack(P), ref.y, ref.T, ref.names


def by_size(P: np.ndarray, y: np.ndarray, T: np.ndarray) -> dict:
    """Per B: over every set of B fold seeds, the bag's figures and its score minus the mean of its members' scores."""
    single = [_row(y, p, T) for p in P]
    out = {}
    for B in range(1, len(P) + 1):
        rows, gains = [], []
        for c in itertools.combinations(range(len(P)), B):
            r = _row(y, P[list(c)].mean(0), T)
            rows.append(r)
            gains.append(r["score"] - np.mean([single[i]["score"] for i in c]))

        def agg(v):
            v = np.asarray(v, dtype=np.float64)
            return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std()), 3)}

        out[str(B)] = {"sets": len(rows), "score": agg([r["score"] for r in rows]), "auroc": agg([r["auroc"] for r in rows]),
                       "ece": agg([r["ece"] for r in rows]), "tpr": agg([r["tpr"] for r in rows]), "tnr": agg([r["tnr"] for r in rows]),
                       "per_type": {a: agg([r["per_type"][a] for r in rows]) for a in ALARM_TYPES},
                       "gain_over_members": {**agg(gains), "sets_better": int(np.sum(np.array(gains) > 0))},
                       "score_at_or_over_goal": int(np.sum([r["score"] >= GOAL for r in rows]))}
    return out


def main() -> int:
    import argparse
    import warnings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "verdict_bag.json"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    P, y, T, names = fold_seed_verdicts(args.data)
    sizes = by_size(P, y, T)
    halves = {}
    for name, idx in (("fold seeds 0..4", slice(0, 5)), ("fold seeds 5..9", slice(5, 10))):
        r = _row(y, P[idx].mean(0), T)
        halves[name] = {"bag": {k: (round(v, 4) if isinstance(v, float) else {a: round(x, 2) for a, x in v.items()}) for k, v in r.items()},
                        "single_mean_score": round(float(np.mean([_row(y, p, T)["score"] for p in P[idx]])), 3),
                        "paired_over_record_draws": paired(P[idx].mean(0)[None], P[idx], y, T, args.draws, 3),
                        # what the bag's figure allows on a new set of 249 alarms (bench/verdict_uncertainty.py's draws)
                        "new_set_249": {k: v for k, v in bootstrap(P[idx].mean(0)[None], y, T, NEW_SET, args.draws, 2).items()
                                        if k != "_draws"}}
    out = {"command": "bench/verdict_bag.py " + " ".join(sys.argv[1:]), "records": len(y), "fold_seeds": 10,
           "by_bag_size": sizes, "disjoint_five_bags": halves, "goal": GOAL}
    path = Path(args.out)
    path.write_text(json.dumps(out, indent=1))
    _plot(sizes, halves, path.with_suffix(".png"))
    print(f"{'B':>3s} {'sets':>5s} {'score':>15s} {'gain over members':>20s} {'AUROC':>6s} {'ECE':>6s} {'>= 84':>6s}  "
          + " ".join(f"{a[:6]:>6s}" for a in ALARM_TYPES))
    for B, s in sizes.items():
        g = s["gain_over_members"]
        print(f"{B:>3s} {s['sets']:5d} {s['score']['mean']:7.2f} ± {s['score']['sd']:4.2f} {g['mean']:+7.2f} ± {g['sd']:4.2f} ({g['sets_better']:3d})"
              f" {s['auroc']['mean']:6.3f} {s['ece']['mean']:6.3f} {s['score_at_or_over_goal']:6d}  "
              + " ".join(f"{s['per_type'][a]['mean']:6.1f}" for a in ALARM_TYPES))
    for name, h in halves.items():
        d = h["paired_over_record_draws"]
        print(f"{name}: bag of 5 {h['bag']['score']:.2f} (AUROC {h['bag']['auroc']:.3f}, ECE {h['bag']['ece']:.3f}) against "
              f"{h['single_mean_score']:.2f} single; over record draws {d['point']:+.2f}, 5-95 % {d['p5']:+.2f} to {d['p95']:+.2f}, "
              f"above 0 in {100 * d['share_above_zero']:.0f} %")
        nb = h["new_set_249"]
        print(f"  on {NEW_SET} new alarms: {nb['score']['p5']:.1f}-{nb['score']['p95']:.1f} (5-95 %), >= {GOAL:g} in "
              f"{100 * nb['share_at_or_above_goal']:.0f} % of draws")
    print(f"wrote {path} and {path.with_suffix('.png').name}")
    return 0


def _plot(sizes: dict, halves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    B = [int(b) for b in sizes]
    m = np.array([sizes[str(b)]["score"]["mean"] for b in B])
    sd = np.array([sizes[str(b)]["score"]["sd"] for b in B])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(B, m - sd, m + sd, alpha=0.25, label="spread over the sets of B fold seeds")
    ax.plot(B, m, "o-", label="bag of B pipelines (nested)")
    for name, h in halves.items():
        ax.plot([5], [h["bag"]["score"]], "s", label=f"bag of {name}")
    ax.axhline(GOAL, color="k", ls="--", lw=0.8, label=f"goal {GOAL:g}")
    ax.set_xlabel("B: pipelines averaged (each fitted on 80 % of the records)")
    ax.set_ylabel("challenge score")
    ax.set_title("The served verdict as a bag of whole pipelines")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
