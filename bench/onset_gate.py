"""A fourth reading for the VT gate: is the fast run faster than the same patient was 16-36 s before the alarm? Chosen
on inner folds, scored on outer folds.

    .venv/bin/python bench/onset_gate.py [--data DIR] [--seeds 5] [--first-seed 0]

A monitor raises a VT alarm at the run's onset: the heart was at another, slower rhythm just before. Most false VT
alarms the served verdict still passes are fast on both leads; a sinus or supraventricular tachycardia that was already
as fast 20 s earlier is no new run.

Written before any reading was computed from these columns for a gate (the plan this bench runs, nothing tuned after):

- **Reading.** ``bench/verdict_ideas.py``'s context column ``ctx_fast_rate_ratio`` per ECG lead: the median beat
  interval over the 20 s before the alarm window divided by the shortest 4-beat mean interval in the window's last 8 s
  (how many times faster the fastest stretch is than the patient's recent baseline); the window reads the largest of
  its leads (the reading most in favour of the alarm); none (never gated) when no lead gives it.
- **Gate.** The run no more than 5 / 10 / 15 / 20 % faster than the baseline (ratio under 1.05 / 1.10 / 1.15 / 1.20),
  chosen on the inner out-of-fold probabilities after the served gate with ``models.definition_gate.fit``'s rule (ties:
  the smaller limit, the more careful gate; none when no limit beats no gate; cap (true + 1) / (gated + 2) below the
  cut), applied after the served gate.
- **Kept (served) only if** on both fold-seed sets (0..4 and 5..9) the paired difference to the served gate is positive
  in the mean and on at least 4 of 5 fold seeds.

Result (one run per fold-seed set, 10 s each): **not kept**. The ratio separates little: median 1.57 over true VT alarms
and 1.33 over false ones, and a tenth of the true ones are within 10 % of their baseline (sustained runs). Seeds 0..4:
80.36 +/- 2.62 against the served gate's 81.30, -0.94 +/- 0.97, better on 1/5 (146 outer windows gated, 15 of them
true); seeds 5..9: 80.00 vs 81.02, -1.02 +/- 1.21, 2/5 (125 gated, 17 true).

Writes bench/results/onset_gate.json and onset_gate.png (the paired differences).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import second_gate  # noqa: E402
from second_gate import VT  # noqa: E402
from verdict_ideas import CONTEXT_NAMES  # noqa: E402
from models import definition_gate as dg  # noqa: E402

# models.definition_gate reads limits as value * (1 - margin): value 1.5 and these margins give 1.20, 1.15, 1.10, 1.05
ONSET = dg.Reading(("n/a",), "max", True, 1.5, "x", "fastest stretch / baseline 20 s before, faster ECG lead")
MARGINS = (0.2, 1 - 1.15 / 1.5, 1 - 1.10 / 1.5, 0.3)
RULE = "served gate + VT onset gate (run vs the patient's baseline, chosen inside)"


def onset_read(b) -> np.ndarray:
    """[records] the faster ECG lead's fast-run rate over its baseline on VT alarms, NaN elsewhere and with none."""
    R = b.F["context"][:, [CONTEXT_NAMES.index(f"{lead}_ctx_fast_rate_ratio") for lead in ("ECG1", "ECG2")]]
    return np.where(b.T == VT, second_gate.row_max(R), np.nan)


def main() -> int:
    return second_gate.reading_main(__doc__, "onset_gate.py", onset_read, RULE, ONSET, "VT onset gate", "ratio", MARGINS)


if __name__ == "__main__":
    raise SystemExit(main())
