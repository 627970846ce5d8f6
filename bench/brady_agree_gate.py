"""A second bradycardia gate: does every source slow down? Chosen on inner folds, scored on outer folds, for the single
pipeline and inside the bag.

    .venv/bin/python bench/brady_agree_gate.py [--data DIR] [--draws 2000]

A bradycardia alarm claims the heart beats under 40 bpm for 5 beats. A real bradycardia slows every source that beats:
both ECG leads, the arterial pulse and the finger pulse. The served definition gate reads the slowest 5-beat rate on
*any* source (the reading most in favour of the alarm) and gates only when even that is over 48 bpm. A source that
misses beats (low-amplitude ECG, a loose lead) reads slow by itself, while another source goes on beating at its usual
rate; the served reading then sides with the slow source.

**How the idea came, said plainly.** It came from reading, this session, the per-source slowest 5-beat rates
(``<source>_min_hr5_bpm`` of the alarm window's batch features) of all 60 bradycardia alarms with their labels. On
every true alarm but one, every source read under 40 bpm (the one: b832s, whose finger pulse reads 109 bpm; the
verdict misses it already). Of the 12 false alarms the bag passes (``bench/verdict_errors.py``), 6 have a source
reading 49-79 bpm. So this is not a blind test: the reading was picked after seeing the labels, and only the margin is
chosen nested. Its figure is optimistic by how much that pick was luck; the rule below asks more than the usual one,
and the note says the same.

**Plan (written on 2026-12-05 before any figure of this bench was computed; nothing tuned after).**

- **Reading** (``AGREE``): the fastest source's slowest 5-beat rate, max over ECG1, ECG2, ABP, PPG of
  ``<source>_min_hr5_bpm`` (sources the record has; none: never gated).
- **Gate**: ``models.definition_gate.fit`` with that reading for bradycardia alone, the served margins (20-50 % over
  40 bpm: 48, 52, 56 or 60 bpm), the margin chosen on each outer fold's inner out-of-fold verdicts after the served
  gate; applied after the served gate and VT re-scorer (they do not touch bradycardia rows).
- **Reference**: the verdict as served (``bench/vt_spectral.served_verdict``), same folds.
- **Kept** (served: the pipelines and the bag refitted with it) only if all of:
  1. single pipeline, on both fold-seed sets (0..4 and 5..9): paired difference positive in the mean and on >= 4/5
     fold seeds;
  2. bag of 5, over all 252 sets of 5 of the 10 fold seeds: gain positive in the mean and in >= 90 % of sets;
  3. both disjoint bags (fold seeds 0..4, 5..9) better, and above 0 in >= 90 % of record draws
     (``bench/verdict_uncertainty.paired``);
  4. no true bradycardia alarm turned from "true" to "false" on more than 2 of the 50 outer folds.

Writes bench/results/brady_agree_gate.json and .png (the per-source readings of the 60 alarms, true and false).
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from definition_gates import gated_folds, load_bench  # noqa: E402
from feature_sets import _row  # noqa: E402
from verdict_uncertainty import paired  # noqa: E402
from vt_spectral import served_verdict  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.features import FEATURE_NAMES  # noqa: E402

BRADY = "Bradycardia"
AGREE = dg.Reading(tuple(f"{s}_min_hr5_bpm" for s in dg.SOURCES), "max", False, 40.0, "bpm",
                   "the fastest source's slowest 5-beat rate", zero_is_none=False)
B = 5


def candidate_verdicts(b, P_served: np.ndarray, typ: str = BRADY, definition: dg.Reading = AGREE) -> tuple[np.ndarray, list]:
    """[fold seeds, records]: the served verdicts with alarm type ``typ``'s rows through a second gate on
    ``definition``, fitted per outer fold on its inner verdicts after the served (first) gate, as
    ``models.definition_gate.fit_served`` fits the second gate; and what the gate did on each outer fold."""
    T, y = b.T, b.y
    reading = dg.readings(b.F["batch@0"], T, {typ: definition})
    P = P_served.copy()
    folds = []
    for si, s in enumerate(b.seeds):
        for k, tr, te, p_inner, p_te in gated_folds(b, s):
            gate = dg.fit(p_inner, y[tr], T[tr], reading[tr], dg.MARGINS, table={typ: definition})
            check_served_rows(P_served[si, te], p_te, T[te], typ)
            P[si, te], rec = gate_outer(gate, P_served[si, te], reading[te], y[te], T[te], typ)
            folds.append({"seed": s, "fold": k, **rec})
    return P, folds


def check_served_rows(p_served: np.ndarray, p_gated: np.ndarray, types: np.ndarray, typ: str) -> None:
    """Exit unless the served verdict's ``typ`` rows of an outer fold are the gated fold verdicts' (same folds, same fits)."""
    if not np.allclose(p_served[types == typ], p_gated[types == typ]):
        raise SystemExit(f"the served verdict's {typ} rows are not the gated ones")


def gate_outer(gate, p: np.ndarray, reading: np.ndarray, y: np.ndarray, types: np.ndarray, typ: str) -> tuple[np.ndarray, dict]:
    """A fitted second gate on an outer fold's served verdicts ``p``: (the verdicts after it, what it did: its margin,
    windows gated and true among them, verdicts it turned from true to false on false and on true alarms)."""
    new, g = gate.apply(p, reading, types)
    flip = g & (p >= dg.CUT)
    return new, {"margin": gate.margins.get(typ), "gated": int(g.sum()), "gated_true": int(y[g].sum()),
                 "flipped_false": int((flip & (y == 0)).sum()), "flipped_true": int((flip & (y == 1)).sum())}


def main() -> int:
    return bench_main(__doc__, "brady_agree_gate.py", BRADY, AGREE, reference_agree=False, short="brady")


def bench_main(doc: str, script: str, typ: str, definition: dg.Reading, reference_agree: bool, short: str, candidate=None,
               arrays_out: dict | None = None) -> int:
    """The whole bench for a second gate on alarm type ``typ`` (``short``: its name in the JSON keys), against the
    verdict as served with (``reference_agree``) or without the served second gate. ``candidate(b, P_served)``: the
    candidate's verdicts and per-fold records (default ``candidate_verdicts`` with ``typ`` and ``definition``).
    ``arrays_out``: a dict given the verdicts [10 fold seeds, records] (``served``, ``candidate``), ``y``, ``types``, the
    JSON's ``path`` and the figures (``_row``) of the bag of 5 of each of the 252 sets, served and candidate
    (``bag_served``, ``bag_candidate``)."""
    import argparse
    import warnings

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / script.replace(".py", ".json")))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    S, C, folds, ref = [], [], [], None
    for first in (0, 5):
        b = load_bench(args.data, 5, first)
        if ref is not None and b.names != ref.names:
            raise SystemExit("the two fold-seed sets read different records")
        Ps = served_verdict(b, agree=reference_agree)[0]  # the verdict as served before this gate
        Pc, f = candidate(b, Ps) if candidate else candidate_verdicts(b, Ps, typ, definition)
        S.append(Ps), C.append(Pc), folds.extend(f)
        ref = b
    S, C, y, T = np.vstack(S), np.vstack(C), ref.y, ref.T
    if arrays_out is not None:
        arrays_out.update(served=S, candidate=C, y=y, types=T, path=Path(args.out))
    single = [{"seed": s, "served": _row(y, S[s], T)["score"], "candidate": _row(y, C[s], T)["score"]} for s in range(10)]
    for r in single:
        r["gain"] = r["candidate"] - r["served"]
    sets = {}
    for name, idx in (("0..4", range(5)), ("5..9", range(5, 10))):
        g = np.array([single[s]["gain"] for s in idx])
        sets[name] = {"gain_mean": float(g.mean()), "gain_sd": float(g.std()), "seeds_better": int((g > 0).sum()),
                      "served_mean": float(np.mean([single[s]["served"] for s in idx])),
                      "candidate_mean": float(np.mean([single[s]["candidate"] for s in idx])),
                      f"{short}_served": float(np.mean([_row(y, S[s], T)["per_type"][typ] for s in idx])),
                      f"{short}_candidate": float(np.mean([_row(y, C[s], T)["per_type"][typ] for s in idx]))}
    bag_gain, bag_s, bag_c, type_s, type_c = [], [], [], [], []
    for c in itertools.combinations(range(10), B):
        rs, rc = _row(y, S[list(c)].mean(0), T), _row(y, C[list(c)].mean(0), T)
        if arrays_out is not None:
            arrays_out.setdefault("bag_served", []).append(rs), arrays_out.setdefault("bag_candidate", []).append(rc)
        bag_s.append(rs["score"]), bag_c.append(rc["score"]), bag_gain.append(rc["score"] - rs["score"])
        type_s.append(rs["per_type"][typ]), type_c.append(rc["per_type"][typ])
    bag_gain = np.array(bag_gain)
    halves = {}
    for name, idx in (("fold seeds 0..4", slice(0, 5)), ("fold seeds 5..9", slice(5, 10))):
        s, k = S[idx].mean(0), C[idx].mean(0)
        halves[name] = {"served": _row(y, s, T), "candidate": _row(y, k, T),
                        "paired_over_record_draws": paired(k[None], s[None], y, T, args.draws, 3)}
    flipped_true_folds = sum(f["flipped_true"] > 0 for f in folds)
    rule = {"1_single": all(v["gain_mean"] > 0 and v["seeds_better"] >= 4 for v in sets.values()),
            "2_bag_sets": bool(bag_gain.mean() > 0 and (bag_gain > 0).mean() >= 0.9),
            "3_disjoint": all(h["candidate"]["score"] > h["served"]["score"] and h["paired_over_record_draws"]["share_above_zero"] >= 0.9
                              for h in halves.values()),
            "4_true_flipped_folds": bool(flipped_true_folds <= 2)}
    F = ref.F["batch@0"]
    cols = [FEATURE_NAMES.index(f) for f in definition.features]
    rows = T == typ
    out = {"command": f"bench/{script} " + " ".join(sys.argv[1:]), "records": len(y), "reading": dg.describe({typ: definition}),
           "single_pipeline": {"per_seed": single, "sets": sets},
           "bag": {"sets": len(bag_gain), "served": {"mean": float(np.mean(bag_s)), "sd": float(np.std(bag_s))},
                   "candidate": {"mean": float(np.mean(bag_c)), "sd": float(np.std(bag_c))},
                   "gain": {"mean": float(bag_gain.mean()), "sd": float(bag_gain.std()), "sets_better": int((bag_gain > 0).sum()),
                            "sets_worse": int((bag_gain < 0).sum())},
                   f"{short}_served": float(np.mean(type_s)), f"{short}_candidate": float(np.mean(type_c))},
           "disjoint_five_bags": halves, "outer_folds": {
               "margins_chosen": dict(Counter(str(f["margin"]) for f in folds)),
               **{k: int(sum(f[k] for f in folds)) for k in ("gated", "gated_true", "flipped_false", "flipped_true")},
               "folds_with_a_true_alarm_flipped": int(flipped_true_folds)},
           "readings": {r: {"label": int(y[i]), "per_source": [None if not np.isfinite(v) else round(float(v), 1) for v in F[i, cols]]}
                        for i, r in enumerate(ref.names) if rows[i]},
           "rule": rule, "kept": bool(all(rule.values())), "per_fold": folds}
    path = Path(args.out)
    path.write_text(json.dumps(out, indent=1, default=float))
    _plot(F[rows][:, cols], y[rows], path.with_suffix(".png"), definition, typ, [f.split("_")[0] for f in definition.features])
    for name, v in sets.items():
        print(f"single pipeline, fold seeds {name}: {v['served_mean']:.2f} -> {v['candidate_mean']:.2f}, {v['gain_mean']:+.2f} ± "
              f"{v['gain_sd']:.2f}, better on {v['seeds_better']}/5; {typ} {v[short + '_served']:.1f} -> {v[short + '_candidate']:.1f}")
    bg = out["bag"]
    print(f"bag of {B} over {bg['sets']} sets: {bg['served']['mean']:.2f} -> {bg['candidate']['mean']:.2f} ± {bg['candidate']['sd']:.2f}; "
          f"gain {bg['gain']['mean']:+.2f} ± {bg['gain']['sd']:.2f}, better in {bg['gain']['sets_better']}, worse in "
          f"{bg['gain']['sets_worse']}; {typ} {bg[short + '_served']:.1f} -> {bg[short + '_candidate']:.1f}")
    for name, h in halves.items():
        d = h["paired_over_record_draws"]
        print(f"{name}: {h['served']['score']:.2f} -> {h['candidate']['score']:.2f} (AUROC {h['candidate']['auroc']:.3f}, ECE "
              f"{h['candidate']['ece']:.3f}); over record draws {d['point']:+.2f}, 5-95 % {d['p5']:+.2f} to {d['p95']:+.2f}, "
              f"above 0 in {100 * d['share_above_zero']:.0f} %")
    print(f"outer folds: {out['outer_folds']}")
    print(f"rule: {rule} -> kept: {out['kept']}")
    print(f"wrote {path} and {path.with_suffix('.png').name}")
    return 0


def _plot(R: np.ndarray, y: np.ndarray, path: Path, definition: dg.Reading = AGREE, typ: str = BRADY,
          sources=dg.SOURCES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    key = np.where(np.isfinite(R), R, -1).max(axis=1) if definition.combine == "max" else np.where(np.isfinite(R), R, 1e9).min(axis=1)
    order = np.lexsort((key, -y))
    for j, (src, mk) in enumerate(zip(sources, "os^v")):
        ax.scatter(np.arange(len(y)), R[order, j], marker=mk, s=18, label=src, alpha=0.8)
    ax.axvline(int(y.sum()) - 0.5, color="k", lw=0.8)
    v = definition.value
    first = v * (0.8 if definition.below else 1.2)
    ax.axhline(v, color="r", ls="--", lw=0.8, label=f"definition: {v:g} {definition.unit}")
    ax.axhline(first, color="grey", ls=":", lw=0.8, label=f"smallest margin: {first:g} {definition.unit}")
    ax.set_xlabel(f"{typ} alarms: true (left of the line), then false; each sorted by {definition.words}")
    ax.set_ylabel(f"{definition.features[0].split('_', 1)[1]} per source")
    ax.set_ylim(0, max(130, float(np.nanmax(R)) * 1.05 if np.isfinite(R).any() else 130))
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
