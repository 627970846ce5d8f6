"""A fifth reading for the VT gate: how many fast beats unlike the patient's own beats follow each other? Chosen on
inner folds, scored on outer folds.

    .venv/bin/python bench/ectopy_gate.py [--data DIR] [--seeds 5] [--first-seed 0]

VT means at least 5 ventricular beats in a row at over 100 bpm. Among the false VT alarms the served verdict passes
with the most confidence are patients with frequent single or paired ectopic beats (wide beats between normal ones,
never five in a row) and ECG artefact; the definition gate's reading (the fastest 5-beat rate) counts any five
detected beats, normal or not.

Written before any value of this reading was looked at for a gate (the plan this bench runs, nothing tuned after):

- **Reading.** ``bench/verdict_ideas.py``'s morphology column ``run_fast_unlike``: over both ECG leads, the longest
  run of consecutive beats in the window's last 8 s that each come under 0.6 s after the beat before (over 100 bpm)
  and correlate under 0.7 with the lead's median beat of the window's first 8 s (unlike the patient's beats). 0 is a
  reading (no such beat); none (never gated) where neither lead gives beats.
- **Gate.** The run shorter than the definition's 5 beats by 20 / 30 / 40 / 50 % (under 4, 3.5, 3, 2.5 beats), chosen
  on the inner out-of-fold probabilities after the served gate with ``models.definition_gate.fit``'s rule (ties: the
  more careful gate; none when no limit beats no gate; cap (true + 1) / (gated + 2) below the cut), applied after the
  served gate (``bench/second_gate.py``).
- **Known risk.** A VT sustained through the whole window makes the first half's median beat a ventricular one, so
  its run reads short; the inner folds weigh that.
- **Kept (served) only if** on both fold-seed sets (0..4 and 5..9) the paired difference to the served gate is positive
  in the mean and on at least 4 of 5 fold seeds.

Result (one run per fold-seed set, 10 s each): **not kept**. The reading does not separate: median 3 consecutive beats
over true VT alarms and 2 over false ones, and 30 of the 59 true ones read under 4 (the first half's median beat is
often itself an ectopic or VT beat, or the run's beats correlate with it above 0.7). No inner fit chooses a limit on
any of the 50 outer folds: +0.00 on both fold-seed sets (81.30 and 81.02, as served).

Writes bench/results/ectopy_gate.json and ectopy_gate.png (the paired differences).
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
from verdict_ideas import MORPH_NAMES  # noqa: E402
from models import definition_gate as dg  # noqa: E402

RUN = dg.Reading(("n/a",), "max", True, 5.0, "beats", "longest run of fast beats unlike the first 8 s, last 8 s, either ECG lead",
                 zero_is_none=False)
RULE = "served gate + VT ectopy gate (consecutive fast unlike beats, chosen inside)"


def ectopy_read(b) -> np.ndarray:
    """[records] the longest run of fast unlike beats on VT alarms, NaN elsewhere and with no reading."""
    M = b.F["morph"]
    run = M[:, MORPH_NAMES.index("run_fast_unlike")]
    # a lead with under 4 beats has no median correlation (and adds nothing to the run): neither lead, no reading
    beats = np.isfinite(M[:, [MORPH_NAMES.index(f"{lead}_corr_last_med") for lead in ("ECG1", "ECG2")]]).any(1)
    return np.where((b.T == VT) & beats & np.isfinite(run), run, np.nan)


def main() -> int:
    return second_gate.reading_main(__doc__, "ectopy_gate.py", ectopy_read, RULE, RUN, "VT ectopy gate", "run", under=4)


if __name__ == "__main__":
    raise SystemExit(main())
