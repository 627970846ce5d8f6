"""How far can the served verdict's nested score be from what it will score on records we do not have? A record-level
bootstrap of the nested outer-fold verdicts.

    .venv/bin/python bench/verdict_uncertainty.py [--data DIR] [--seeds 5] [--first-seed 0] [--draws 2000] [--new 249]

The nested figure (82.09 +/- 1.85 on fold seeds 0..4) carries a spread over fold seeds: how much the figure moves when
the same 501 records are dealt into other folds. It says nothing of the records themselves: another 501 alarms from
the same monitors would score differently. This bench resamples the records.

Each record's verdict is the served procedure's on the outer fold that holds it, per fold seed (``bench/vt_spectral.py``
``served_verdict``: K and the map chosen inside, then the definition gate and the VT re-scorer fitted inside). Chooses
nothing. A draw
takes, per alarm type, as many records of that type as it holds (with replacement; the type mix stays the development
folder's), and scores every fold seed's verdicts on the drawn records; the draw's figure is their mean, as the nested
figure is. ``--new N``: the same for a set of N alarms (the type mix kept, each type's count rounded), the size of the
set the first wave tried the registry on. Reported: the nested point figure; the 5-95 % and 2.5-97.5 % range of the
draws for the score, AUROC and ECE (10 bins) at the development folder's size and at N; the share of draws at or above
the goal (84) and at or above the published anchors (81.39, 83.08); per alarm type the score's 5-95 % range and the
share of draws at or above 75; and, for paired comparisons drawn the same way on the same records, the served gate's
gain over the served procedure without it (``bench/definition_gates.py``: +1.23 +/- 0.24 over fold seeds) and the VT
re-scorer's gain over the gated verdict (``bench/vt_spectral.py``).
ECE over a draw reads high: drawn duplicates and fewer distinct records put fewer records in each bin, so the draws'
ECE sits above the folder's own.

What the draws cannot say: the fold predictions are held fixed, so a draw varies the records scored, not the records
trained on; the spread over fold seeds is the other half and is of the same size.

Latest runs (2,000 draws, seconds each), the verdict as served since the VT re-scorer (``bench/vt_spectral.py``).
Fold seeds 0..4: nested 82.09 (sd over fold seeds 1.85); on 501 records like these, 5-95 % of draws 78.5-85.4 (sd
2.10), >= 84 in 18.2 % of draws; on 249 new records 77.5-86.6 (sd 2.87), >= 84 in 28.8 %; AUROC 0.942-0.979 on 249;
bradycardia 56-88 and VT 67-83 on 249 (>= 75 in 44 % and 55 % of draws); paired, the gate's gain +1.23 (+0.56 to
+2.00, above 0 in every draw) and the re-scorer's +0.79 (-0.41 to +1.95, above 0 in 86 %). Fold seeds 5..9: 82.22;
78.7-85.6 on 501 (>= 84 in 20.1 %), 77.5-86.8 on 249 (29.6 %); the gate +1.26 (+0.57 to +2.00), the re-scorer +1.20
(+0.27 to +2.23, 99 %). Before the re-scorer (the verdict served until then): 81.30, 76.7-86.0 on 249 (>= 84 in 18.6 %)
and 81.02, 76.4-85.8 (15.8 %). So the served verdict's figure on one set of 249 unseen alarms can land anywhere within
about 4.6 points of the nested figure, the goal of 84 included about one time in three or four; an idea worth +0.5
cannot be seen on one such set, and a figure on one such set says little about a rule by itself.

Writes bench/results/verdict_uncertainty.json and verdict_uncertainty.png (the score's draws at both sizes against the
goal and the anchors; per alarm type the range against 75).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from definition_gates import served_folds  # noqa: E402
from vt_spectral import served_verdict  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.calibration import ece  # noqa: E402
from models.data import ALARM_TYPES  # noqa: E402
from models.metrics import FN_COST, auroc  # noqa: E402

SHORT = {"Asystole": "asystole", "Bradycardia": "brady", "Tachycardia": "tachy", "Ventricular_Tachycardia": "VT",
         "Ventricular_Flutter_Fib": "VF"}
GOAL, ANCHORS, TYPE_FLOOR = 84.0, {"real-time winner (hidden test)": 81.39, "best published real-time (hidden test)": 83.08}, 75.0


def scores(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Challenge score of each row of ``pred`` [.., n] (bool) against ``y`` [.., n]."""
    y = y.astype(bool)
    tp, tn = (y & pred).sum(-1), (~y & ~pred).sum(-1)
    fp, fn = (~y & pred).sum(-1), (y & ~pred).sum(-1)
    return 100.0 * (tp + tn) / np.maximum(tp + tn + fp + FN_COST * fn, 1)


def draws(T: np.ndarray, size: int, n_draws: int, rng) -> np.ndarray:
    """[n_draws, ~size] record indices, drawn with replacement per alarm type, each type's share of ``size`` as in T."""
    parts = []
    for a in ALARM_TYPES:
        idx = np.flatnonzero(T == a)
        if len(idx):
            k = max(1, int(round(size * len(idx) / len(T))))
            parts.append(idx[rng.integers(0, len(idx), (n_draws, k))])
    return np.concatenate(parts, axis=1)


def summarize(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)), "p2.5": float(np.percentile(v, 2.5)), "p5": float(np.percentile(v, 5)),
            "p50": float(np.median(v)), "p95": float(np.percentile(v, 95)), "p97.5": float(np.percentile(v, 97.5))}


def bootstrap(P: np.ndarray, y: np.ndarray, T: np.ndarray, size: int, n_draws: int, seed: int) -> dict:
    """Score / AUROC / ECE draws (each the mean over the fold seeds' verdicts) and per-type score draws, at ``size``."""
    rng = np.random.default_rng(seed)
    D = draws(T, size, n_draws, rng)
    pred = P >= dg.CUT  # [S, n]
    sc = scores(y[D][None], pred[:, D]).mean(0)  # [n_draws]
    au = np.array([np.mean([auroc(y[d], p[d]) for p in P]) for d in D])
    ce = np.array([np.mean([ece(y[d], p[d]) for p in P]) for d in D])
    per_type = {}
    for a in ALARM_TYPES:
        m = T == a
        idx = np.flatnonzero(m)
        k = max(1, int(round(size * len(idx) / len(T))))
        Da = idx[rng.integers(0, len(idx), (n_draws, k))]
        ta = scores(y[Da][None], pred[:, Da]).mean(0)
        per_type[a] = {**summarize(ta), "point": float(scores(y[m][None], pred[:, m]).mean()),
                       "share_at_or_above_75": float((ta >= TYPE_FLOOR).mean()), "records": k}
    return {"records": int(D.shape[1]), "score": summarize(sc), "auroc": summarize(au), "ece": summarize(ce),
            "share_at_or_above_goal": float((sc >= GOAL).mean()),
            "share_at_or_above": {k: float((sc >= v).mean()) for k, v in ANCHORS.items()},
            "per_type": per_type, "_draws": sc}


def paired(P: np.ndarray, P_ref: np.ndarray, y: np.ndarray, T: np.ndarray, n_draws: int, seed: int) -> dict:
    """The score of ``P`` minus that of ``P_ref`` (both [fold seeds, n]), each the mean over fold seeds, on the same
    draws of records: its point, 5-95 % range and the share of draws where it is above 0."""
    D = draws(T, len(T), n_draws, np.random.default_rng(seed))
    a, r = P >= dg.CUT, P_ref >= dg.CUT
    diff = scores(y[D][None], a[:, D]).mean(0) - scores(y[D][None], r[:, D]).mean(0)
    changed = int((a != r).any(0).sum())
    return {"point": float(scores(y[None], a).mean() - scores(y[None], r).mean()), **summarize(diff),
            "share_above_zero": float((diff > 0).mean()), "records_with_a_different_verdict": changed}


def _options(ap) -> None:
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--new", type=int, default=249, help="size of an unseen set of alarms (default: the first wave's 249)")


def main() -> int:
    from second_gate import args_and_bench

    args, out_path, b = args_and_bench(__doc__, "verdict_uncertainty", _options)
    P, P_gated = served_verdict(b)  # as served (gate, VT re-scorer), and before the re-scorer
    P_shift = np.zeros_like(P)  # the served procedure without the definition gate
    for si, s in enumerate(b.seeds):
        for _, _, te, _, _, p_te in served_folds(b, s):
            P_shift[si, te] = p_te
    pred = P >= dg.CUT
    point = {"score": float(scores(b.y[None], pred).mean()), "auroc": float(np.mean([auroc(b.y, p) for p in P])),
             "ece": float(np.mean([ece(b.y, p) for p in P])),
             "score_sd_over_fold_seeds": float(scores(b.y[None], pred).std())}  # ddof 0, as the other benches state it
    here = bootstrap(P, b.y, b.T, b.n, args.draws, 1)
    new = bootstrap(P, b.y, b.T, args.new, args.draws, 2)
    gate = paired(P_gated, P_shift, b.y, b.T, args.draws, 3)
    vt = paired(P, P_gated, b.y, b.T, args.draws, 4)
    doc = {"command": "bench/verdict_uncertainty.py " + " ".join(sys.argv[1:]), "records": b.n, "fold_seeds": args.seeds,
           "first_seed": args.first_seed, "fold_predictions": b.path.name, "draws": args.draws,
           "rule": "served verdict + definition gate, nested outer-fold verdicts per fold seed, records drawn per alarm type",
           "point": point, "goal": GOAL, "anchors": ANCHORS,
           "development_size": {k: v for k, v in here.items() if k != "_draws"},
           "new_set": {k: v for k, v in new.items() if k != "_draws"}, "gate_gain_paired": gate, "vt_rescorer_gain_paired": vt}
    out_path.write_text(json.dumps(doc, indent=1))
    _plot(point, here, new, out_path.with_suffix(".png"))
    print(f"nested point: score {point['score']:.2f} (sd over fold seeds {point['score_sd_over_fold_seeds']:.2f}), "
          f"AUROC {point['auroc']:.3f}, ECE {point['ece']:.3f}")
    for name, r in (("this folder", here), (f"a new set of {args.new}", new)):
        s, a, e = r["score"], r["auroc"], r["ece"]
        print(f"{name:18s} ({r['records']} records): score 5-95 % {s['p5']:.1f}-{s['p95']:.1f} (sd {s['sd']:.2f}), AUROC "
              f"{a['p5']:.3f}-{a['p95']:.3f}, ECE {e['p5']:.3f}-{e['p95']:.3f}; >= {GOAL:.0f} in {100 * r['share_at_or_above_goal']:.1f} % of draws")
        print("   per type 5-95 % (share >= 75): " + "; ".join(
            f"{SHORT[a]} {t['p5']:.0f}-{t['p95']:.0f} ({100 * t['share_at_or_above_75']:.0f} %)" for a, t in r["per_type"].items()))
    print(f"the definition gate's gain, paired: {gate['point']:+.2f}, 5-95 % {gate['p5']:+.2f} to {gate['p95']:+.2f}, above 0 in "
          f"{100 * gate['share_above_zero']:.1f} % of draws ({gate['records_with_a_different_verdict']} records change verdict)")
    print(f"the VT re-scorer's gain, paired: {vt['point']:+.2f}, 5-95 % {vt['p5']:+.2f} to {vt['p95']:+.2f}, above 0 in "
          f"{100 * vt['share_above_zero']:.1f} % of draws ({vt['records_with_a_different_verdict']} records change verdict)")
    print(f"wrote {out_path} and {out_path.with_suffix('.png').name}")
    return 0


def _plot(point: dict, here: dict, new: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    bins = np.linspace(min(new["_draws"].min(), here["_draws"].min()) - 0.5, max(new["_draws"].max(), here["_draws"].max(), GOAL) + 0.5, 50)
    a.hist(here["_draws"], bins=bins, alpha=0.6, label=f"{here['records']} records (this folder's size)", color="C0")
    a.hist(new["_draws"], bins=bins, alpha=0.45, label=f"{new['records']} new records", color="C1")
    a.axvline(point["score"], color="k", lw=1.5, label=f"nested figure {point['score']:.1f}")
    a.axvline(GOAL, color="C3", ls="--", label=f"goal {GOAL:.0f} (reached in {100 * new['share_at_or_above_goal']:.0f} % of {new['records']}-record draws)")
    for i, (k, v) in enumerate(ANCHORS.items()):
        a.axvline(v, color="0.5", ls=":" if i else "-.", label=f"{k} {v}")
    a.set_xlabel("challenge score of the served verdict on a draw of records")
    a.set_ylabel("draws")
    a.set_title("What the nested figure allows on other records")
    a.set_ylim(0, a.get_ylim()[1] * 1.6)  # room for the legend above the draws
    a.legend(fontsize=7, loc="upper left", ncol=2)
    types = list(here["per_type"])
    x = np.arange(len(types))
    for off, r, c in ((-0.15, here, "C0"), (0.15, new, "C1")):
        t = [r["per_type"][k] for k in types]
        mid = [v["point"] for v in t]
        b.errorbar(x + off, mid, yerr=[[m - v["p5"] for m, v in zip(mid, t)], [v["p95"] - m for m, v in zip(mid, t)]], fmt="o",
                   color=c, capsize=3, label=f"5-95 % of draws, {r['records']} records")
    b.axhline(TYPE_FLOOR, color="C3", ls="--", label="floor 75")
    b.set_xticks(x, [SHORT[k] for k in types])
    b.set_ylabel("challenge score per alarm type")
    b.set_title("Per alarm type")
    b.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
