"""The six VT gate readings together, as a soft re-scorer of the served VT verdict instead of six hard gates. Fitted on
inner folds, scored on outer folds.

    .venv/bin/python bench/vt_rescorer.py [--data DIR] [--seeds 5] [--first-seed 0]

Each of the six VT readings tried as a gate (``bench/width_gate.py``, ``pulse_gate.py``, ``confirmed_gate.py``,
``onset_gate.py``, ``ectopy_gate.py``, ``history_gate.py``) was never or seldom chosen: a hard cap must gate almost no
true alarm, and none of them alone keeps clear of the true VT alarms. Together, weighed against the served probability,
they might still move the false VT alarms that sit just over the cut (most of the 44 passed read 0.17-0.35).

The plan, written on 2026-12-05 before the first run (nothing tuned after):

Per outer fold (5 folds x each fold seed), after the served procedure and the served definition gate
(``definition_gates.gated_folds``):

1. the VT training records' inputs: logit of the gated inner out-of-fold probability (clipped to 1e-4 .. 1 - 1e-4) and
   the six readings (widest QRS of the fastest run, s; pulse affected 0/1; confirmed-beat rate, bpm; onset ratio;
   longest run of fast beats unlike the first 8 s; the same against the patient's beat before the window), each
   centred on its median and scaled by its IQR over those training records, a missing reading 0 (the median);
2. an L2 logistic regression (C = 1) on them against the labels (``sklearn.linear_model.LogisticRegression``);
3. the outer VT records' verdicts replaced by its probability on their inputs (the outer gated probability's logit and
   their readings, scaled as in 1); every other alarm type unchanged; the cut stays 1/6.

Paired against the served verdict with its gate on the same folds. Kept (served) only if, on both fold-seed sets (0..4
and 5..9), the paired difference is positive in the mean and on at least 4 of 5 fold seeds.

Result (one run per fold-seed set, 12 s each): **not
kept.** Seeds 0..4: 80.28 +/- 2.07 against 81.30 +/- 2.15, **-1.02 +/- 0.45, better on 0/5**; VT 73.6 -> 71.5; over the
25 outer folds the re-scorer stops 11 false VT alarms the served verdict passed, passes 25 it stopped and misses 3 true
ones more. Seeds 5..9: 80.43 against 81.02, **-0.58 +/- 0.94, 2/5**. The fitted weights (seeds 0..4, mean over outer
folds, on IQR-scaled readings): served logit 1.17, intercept +0.38 (it lifts VT verdicts, as the per-type Platt map of
``bench/type_maps.py`` did), the readings -0.26 to +0.19 with fold-to-fold spreads as large: beside the served
probability they carry little the 180 training VT records can weigh.

Over record draws (``bench/verdict_uncertainty.py``'s paired bootstrap, added after this run): -1.02 (5-95 % -1.72 to
-0.38) and -0.58 (-1.40 to +0.14). ``compare`` is also the harness of ``bench/vt_spectral.py``.

Writes bench/results/vt_rescorer.json (the figures per rule and fold seed, the paired summary, the coefficients per
outer fold) and vt_rescorer.png (the paired differences).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import second_gate  # noqa: E402
from confirmed_gate import confirmed_read  # noqa: E402
from definition_gates import gated_folds  # noqa: E402
from ectopy_gate import ectopy_read  # noqa: E402
from feature_sets import _row, paired_bars, print_rules, summarize_rules  # noqa: E402
from history_gate import history_read  # noqa: E402
from onset_gate import onset_read  # noqa: E402
from pulse_gate import pulse_read  # noqa: E402
from width_gate import width_read  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.vt_spectral import fit as vt_fit  # noqa: E402

VT = second_gate.VT
SERVED_GATE = second_gate.SERVED_GATE
SERVED = "served verdict (gate, then the VT re-scorer on purity and high_share; fitted inside)"
RULE = "served gate + VT re-scorer on the six gate readings (fitted inside)"
READINGS = ("width_s", "pulse_affected", "confirmed_bpm", "onset_ratio", "ectopy_run", "history_run")


def readings(b) -> np.ndarray:
    """[records, 6] the six VT readings, each from its gate bench (NaN off VT records and where none)."""
    t0 = time.perf_counter()
    R = np.column_stack([read(b) for read in (width_read, pulse_read, confirmed_read, onset_read, ectopy_read, history_read)])
    print(f"VT readings of {int((b.T == VT).sum())} records in {time.perf_counter() - t0:.0f} s", flush=True)
    return R


def rescore(p_inner: np.ndarray, y_inner: np.ndarray, R_inner: np.ndarray, p_out: np.ndarray, R_out: np.ndarray):
    """The re-scorer (``models.vt_spectral.fit``, here on any readings) fitted on the inner VT records, applied to the
    outer ones: (outer probabilities, [intercept, weights])."""
    r = vt_fit(p_inner, y_inner, [VT] * len(p_inner), R_inner)
    return r.apply(p_out, R_out, [VT] * len(p_out))[0], [round(float(c), 4) for c in [r.intercept, *r.coef]]


def compare(b, rules: dict[str, tuple[np.ndarray, tuple[str, ...]]], alarm_type: str = VT, served_R=None,
            against: str | None = None, outer_out: dict | None = None) -> dict:
    """Per rule (name: readings [records, k] and their names), the served verdict + gate with its ``alarm_type`` verdicts
    re-scored (``rescore``, fitted on each outer fold's inner records of that type), paired against the served verdict +
    gate on the same folds: the summary, the outer verdicts each rule moved, and the per-fold weights. ``served_R``
    (another type than VT only): the served VT readings; the reference and every rule then first re-score the VT
    verdicts with them, as served (``SERVED``). ``against``: one of the rules, the reference of the paired figures
    instead (the moves stay counted against the verdict without a re-scorer). ``outer_out``: a dict filled with each
    rule's outer verdicts [fold seeds, records] (and the reference's)."""
    from verdict_uncertainty import paired

    if served_R is not None and alarm_type == VT:
        raise ValueError("served_R re-scores the VT verdicts first: the rules must re-score another alarm type")
    if against is not None and against not in rules:
        raise ValueError(f"against must name one of the rules, got {against!r}")
    ref = SERVED_GATE if served_R is None else SERVED
    T, y = b.T, b.y
    per_seed: dict[str, list] = {}
    per_fold = []
    outer = {name: np.zeros((len(b.seeds), b.n)) for name in (ref, *rules)}
    for si, s in enumerate(b.seeds):
        probs = {name: P[si] for name, P in outer.items()}
        for k, tr, te, p_inner, p_te in gated_folds(b, s):
            if served_R is not None:
                wi, wo = tr[T[tr] == VT], te[T[te] == VT]
                p_te = p_te.copy()
                p_te[T[te] == VT] = rescore(p_inner[T[tr] == VT], y[wi], served_R[wi], p_te[T[te] == VT], served_R[wo])[0]
            probs[ref][te] = p_te
            vi, vo = tr[T[tr] == alarm_type], te[T[te] == alarm_type]
            mi, mo = T[tr] == alarm_type, T[te] == alarm_type
            for rule, (R, names) in rules.items():
                probs[rule][te] = p_te
                new, coef = rescore(p_inner[mi], y[vi], R[vi], p_te[mo], R[vo])
                probs[rule][vo] = new
                old_pass, new_pass = p_te[mo] >= dg.CUT, new >= dg.CUT
                per_fold.append({"rule": rule, "seed": s, "fold": k, "coef": dict(zip(("intercept", "logit_served", *names), coef)),
                                 "false_now_passed": int((~old_pass & new_pass & (y[vo] == 0)).sum()),
                                 "false_now_stopped": int((old_pass & ~new_pass & (y[vo] == 0)).sum()),
                                 "true_now_missed": int((old_pass & ~new_pass & (y[vo] == 1)).sum()),
                                 "true_now_caught": int((~old_pass & new_pass & (y[vo] == 1)).sum())})
        for name, p in probs.items():
            per_seed.setdefault(name, []).append(_row(y, p, T))
    if outer_out is not None:
        outer_out.update(outer)
    keys = ("false_now_stopped", "false_now_passed", "true_now_missed", "true_now_caught")
    moves = {rule: {k: int(sum(f[k] for f in per_fold if f["rule"] == rule)) for k in keys} for rule in rules}
    return {"fold_seeds": len(b.seeds), "first_seed": b.seeds[0], "records": b.n, "fold_predictions": b.path.name,
            "readings": {rule: list(names) for rule, (_, names) in rules.items()},
            "alarm_type": alarm_type, "reference": against or ref,
            "readings_missing": {rule: {r: int((~np.isfinite(R[T == alarm_type, j])).sum()) for j, r in enumerate(names)}
                                 for rule, (R, names) in rules.items()},
            "summary": summarize_rules(per_seed, against or ref, "minus_served"), "outer_moves_over_folds": moves,
            # the paired difference over record draws (bench/verdict_uncertainty.py), fold seeds' verdicts held fixed
            "paired_over_record_draws": {rule: paired(outer[rule], outer[against or ref], y, T, 2000, 3) for rule in rules
                                         if rule != against},
            "per_fold": per_fold, "per_seed": per_seed}


def write(script: str, out: dict, out_path: Path, title: str) -> None:
    """The JSON (with the command line), the paired differences' picture, and the table on stdout."""
    doc = {"command": f"bench/{script} " + " ".join(sys.argv[1:]), **out}
    out_path.write_text(json.dumps(doc, indent=1))
    _plot(out["summary"], out["fold_seeds"], out_path.with_suffix(".png"), title)
    print_rules(out["summary"])
    for rule, m in out["outer_moves_over_folds"].items():
        if rule not in out["paired_over_record_draws"]:
            continue
        d = out["paired_over_record_draws"][rule]
        print(f"{rule!r}: outer {out['alarm_type']} verdicts moved, summed over folds and seeds: {m}; paired over record draws "
              f"{d['point']:+.2f}, 5-95 % {d['p5']:+.2f} to {d['p95']:+.2f}, above 0 in {100 * d['share_above_zero']:.0f} %")
    print(f"wrote {out_path} and {out_path.with_suffix('.png').name}")


def main() -> int:
    args, out_path, b = second_gate.args_and_bench(__doc__, "vt_rescorer")
    out = compare(b, {RULE: (readings(b), READINGS)})
    write("vt_rescorer.py", out, out_path, "VT re-scorer on the six gate readings")
    return 0


def _plot(summary: dict, fold_seeds: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    paired_bars(ax, summary, fold_seeds)
    ax.set_title(f"{title}: paired difference to the served verdict + gate")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
