"""The second gate's principle carried to ventricular tachycardia: does the run show on both ECG leads? Chosen on inner
folds, scored on outer folds, for the single pipeline and inside the bag.

    .venv/bin/python bench/vt_agree_gate.py [--data DIR] [--draws 2000]

``bench/brady_agree_gate.py`` found that the reading *least* in favour of a bradycardia alarm separates what the served
reading cannot (kept); on tachycardia the same idea found nothing to gate (``bench/tachy_agree_gate.py``: at fast
rates a pulse source misses beats). For VT (>= 5 ventricular beats over 100 bpm) the served gate reads the *faster*
ECG lead's fastest 5-beat rate and caps the verdict when even that is under 80 bpm. A ventricular run is one rhythm of
the whole heart and shows on every lead; artefact on one lead makes that lead alone read fast. This reading is written
down **before looking at any VT reading of this kind or its labels**.

**Plan (written on 2026-12-05 before any figure of this bench was computed; nothing tuned after).**

- **Reading**: the *slower* ECG lead's fastest 5-beat rate, min over ECG1 and ECG2 of ``<lead>_max_hr5_bpm`` (a lead
  with no beats, 0, gives none; none: never gated). Pulse sources are left out, as in the served VT reading.
- **Gate**: part of the second gate's table next to bradycardia (``models.definition_gate.fit_served`` fits both in one
  ``fit`` on the first gate's output): the served margins, under 80 / 70 / 60 / 50 bpm, chosen on each outer fold's
  inner verdicts; the VT re-scorer is then fitted on the verdicts after both gates, as the served fit does
  (``bench/vt_spectral.served_verdict(b, table=...)``).
- **Reference**: the verdict as served now (with the bradycardia second gate).
- **Kept** only if all four of ``bench/brady_agree_gate.py``'s rule hold (single pipeline >= 4/5 fold seeds on both
  sets; bag better in >= 90 % of the 252 sets; both disjoint bags above 0 in >= 90 % of record draws; at most 2 outer
  folds turning a true alarm false).

Result (one run, 40 s): **not kept; it loses**. Single pipeline -0.48 +/- 0.88 (1/5) and -0.20 +/- 0.31 (0/5); the
bag of 5 84.37 -> 84.32 (-0.05 +/- 0.16, better in 5, worse in 62 of the 252 sets); disjoint bags 84.91 -> 84.91 and
84.91 -> 84.72. The inner folds chose a gate on 18 of 50 outer folds; it turned 5 true VT alarms false (on 3 folds)
and only 1 false one. A true ventricular run is often slow or unseen on one lead (low amplitude, a lead that misses
wide complexes), so "both leads run fast" fails on real VT as it did on real tachycardia.

Writes bench/results/vt_agree_gate.json and .png (each VT alarm's two lead readings).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brady_agree_gate import bench_main  # noqa: E402
from definition_gates import gated_folds  # noqa: E402
from vt_spectral import served_verdict  # noqa: E402
from models import definition_gate as dg  # noqa: E402

VT = "Ventricular_Tachycardia"
AGREE = dg.Reading(("ECG1_max_hr5_bpm", "ECG2_max_hr5_bpm"), "min", True, 100.0, "bpm", "the slower ECG lead's fastest 5-beat rate")


def candidate(b, P_served: np.ndarray) -> tuple[np.ndarray, list]:
    """The verdict as served with VT in the second gate's table (the re-scorer refitted after it), and per outer fold
    the VT margin chosen, windows gated and verdicts turned false against ``P_served``."""
    table = {**dg.AGREE_READINGS, VT: AGREE}
    P = served_verdict(b, table=table)[0]
    reading = dg.readings(b.F["batch@0"], b.T, table)
    folds = []
    for si, s in enumerate(b.seeds):
        for k, tr, te, p_inner, _ in gated_folds(b, s):
            g2 = dg.fit(p_inner, b.y[tr], b.T[tr], reading[tr], dg.MARGINS, table=table)
            g = g2.gated(reading[te], b.T[te]) & (b.T[te] == VT)
            flip = (P_served[si, te] >= dg.CUT) & (P[si, te] < dg.CUT) & (b.T[te] == VT)
            folds.append({"seed": s, "fold": k, "margin": g2.margins.get(VT), "gated": int(g.sum()), "gated_true": int(b.y[te][g].sum()),
                          "flipped_false": int((flip & (b.y[te] == 0)).sum()), "flipped_true": int((flip & (b.y[te] == 1)).sum())})
    return P, folds


def main() -> int:
    return bench_main(__doc__, "vt_agree_gate.py", VT, AGREE, reference_agree=True, short="vt", candidate=candidate)


if __name__ == "__main__":
    raise SystemExit(main())
