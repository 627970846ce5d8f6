"""A calibration map per alarm type on the served verdict, fitted on inner folds, against the one map the service uses.

    .venv/bin/python bench/type_maps.py [--data DIR] [--seeds 5] [--first-seed 0]

The verdict's last step is one calibration map over all alarm types (``models.verdict_shift``), then the one cut 1/6.
``bench/type_cuts.py`` chose a cut per type on inner folds: not kept (+0.21 and +0.36, 3/5 and 4/5 seeds), but
bradycardia's inner folds chose 1/3 on most outer folds, which says its probabilities run high. A map per type is the
principled form of that (it also serves the published probability, not only the verdict). **This idea comes from that
result on the same records**, so even a pass here would want confirming on records the project has not seen.

Written before the run (the plan, nothing tuned after):

- **Rule.** On each outer fold, after the served procedure (K and its map chosen inside) and before the definition gate:
  per alarm type a Platt map (``models.calibration.Calibrator.fit("platt", ...)``) fitted on that type's inner
  out-of-fold probabilities, where the type has at least ``MIN_EACH`` true and ``MIN_EACH`` false inner rows (else the
  type keeps the served probability); the definition gate is then fitted on the mapped inner probabilities, and the
  outer fold is mapped, gated and cut at 1/6.
- **Kept only if** on both fold-seed sets (0..4 and 5..9) the paired difference to the served gate is positive in the
  mean and better on at least 4 of 5 fold seeds.

Result (one run per fold-seed set, seconds each): **not kept**. Seeds 0..4: 80.81 +/- 1.46 against the served gate's
81.30, -0.49 +/- 0.97, better on 2/5; seeds 5..9: 80.37 +/- 1.77 against 81.02, -0.65 +/- 0.50, 0/5; ECE 0.036 ->
0.037 and 0.035 -> 0.042. Bradycardia loses most (72.2 -> 67.5, 73.8 -> 71.9): a map fitted on ~48 inner rows is
flatter than the global one and moves true alarms under 1/6, where a missed alarm costs five false ones. The per-type
cut's gain did not come from a miscalibration a map can fix.

Writes bench/results/type_maps.json (per seed and summary, which types got a map on how many outer folds) and
type_maps.png (the paired differences).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import second_gate  # noqa: E402
from definition_gates import served_folds  # noqa: E402
from feature_sets import _row, summarize_rules  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.calibration import Calibrator  # noqa: E402
from models.data import ALARM_TYPES  # noqa: E402

MIN_EACH = 5
RULE = "served + a Platt map per alarm type (fitted inside) + gate"


def type_maps(p: np.ndarray, y: np.ndarray, T: np.ndarray) -> dict[str, Calibrator]:
    """A Platt map per alarm type with at least ``MIN_EACH`` rows of each class among these rows."""
    return {a: Calibrator.fit("platt", p[T == a], y[T == a]) for a in ALARM_TYPES
            if min(int((y[T == a] == 1).sum()), int((y[T == a] == 0).sum())) >= MIN_EACH}


def mapped(maps: dict[str, Calibrator], p: np.ndarray, T: np.ndarray) -> np.ndarray:
    q = p.copy()
    for a, m in maps.items():
        q[T == a] = m.transform(p[T == a])
    return q


def main() -> int:
    args, out_path, b = second_gate.args_and_bench(__doc__, "type_maps")
    T, y = b.T, b.y
    rate = dg.readings(b.F["batch@0"], T)
    per_seed: dict[str, list] = {}
    got: Counter = Counter()
    for s in b.seeds:
        probs = {second_gate.SERVED_GATE: np.zeros(b.n), RULE: np.zeros(b.n)}
        for k, tr, te, K, p_inner, p_te in served_folds(b, s):
            maps = type_maps(p_inner, y[tr], T[tr])
            got.update(a for a, m in maps.items() if m.method != "none")
            for name, (pi, pt) in {second_gate.SERVED_GATE: (p_inner, p_te),
                                   RULE: (mapped(maps, p_inner, T[tr]), mapped(maps, p_te, T[te]))}.items():
                gate = dg.fit(pi, y[tr], T[tr], rate[tr], dg.MARGINS)
                probs[name][te], _ = gate.apply(pt, rate[te], T[te])
        for name, p in probs.items():
            per_seed.setdefault(name, []).append(_row(y, p, T))
    out = {"fold_seeds": len(b.seeds), "first_seed": b.seeds[0], "records": b.n, "fold_predictions": b.path.name,
           "summary": summarize_rules(per_seed, second_gate.SERVED_GATE, "minus_served"), "per_seed": per_seed}
    extra = {"min_each_class": MIN_EACH, "outer_folds_with_a_map": dict(got)}
    second_gate.write("type_maps.py", out, extra, out_path, "a calibration map per alarm type")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
