"""The second gate's principle carried to tachycardia: does every source speed up? Chosen on inner folds, scored on outer
folds, for the single pipeline and inside the bag.

    .venv/bin/python bench/tachy_agree_gate.py [--data DIR] [--draws 2000]

``bench/brady_agree_gate.py`` found, on bradycardia, that the reading *least* in favour of the alarm separates what
the served reading (the one most in favour) cannot: a real bradycardia slows every source. The same holds the other
way for tachycardia (a rate over 140 bpm for 17 beats): a real tachycardia speeds every source that beats, while a
source that double-counts (T waves, artefact) reads fast alone. Unlike the bradycardia reading, this one is written
down **before looking at any tachycardia reading or label**: the principle is carried over, nothing about the
tachycardia alarms was seen.

**Plan (written on 2026-12-05 before any figure of this bench was computed; nothing tuned after).**

- **Reading** (``AGREE``): the slowest source's fastest 17-beat rate, min over ECG1, ECG2, ABP, PPG of
  ``<source>_max_hr17_bpm`` (a source with no beats, 0, gives none; no source: never gated).
- **Gate**: ``models.definition_gate.fit`` with that reading for tachycardia alone, the served margins (20-50 % under
  140 bpm: 112, 98, 84 or 70 bpm), chosen on each outer fold's inner verdicts after the served first gate (as
  ``fit_served`` fits the second gate), applied after the served verdict (the bradycardia second gate and the VT
  re-scorer do not touch tachycardia rows).
- **Reference**: the verdict as served now (``bench/vt_spectral.served_verdict``, with the bradycardia second gate).
- **Kept** (the second gate's table gains tachycardia; pipelines and bag refitted) only if all four of
  ``bench/brady_agree_gate.py``'s rule hold: the single pipeline better on >= 4/5 fold seeds of both sets; the bag
  better in >= 90 % of the 252 sets; both disjoint bags above 0 in >= 90 % of record draws; at most 2 outer folds
  turning a true alarm false.

Result (one run, 40 s): **not kept; no inner fit chooses the gate** on any of the 50 outer folds, so the verdicts are
the served ones (+0.00 everywhere). The reading does not separate here: all 6 false tachycardia alarms read under 112
bpm (59-99), but so do 50 of the 87 true ones (median 104 bpm, a quarter under 59): at a fast rate some source, often
a pulse, misses beats and reads slow, so "every source agrees" fails on real tachycardias too. The principle holds
for bradycardia (a missed beat makes a rate slower, the direction the alarm claims) and not for tachycardia.

Writes bench/results/tachy_agree_gate.json and .png (each tachycardia alarm's per-source readings).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brady_agree_gate import bench_main  # noqa: E402
from models import definition_gate as dg  # noqa: E402

TACHY = "Tachycardia"
AGREE = dg.Reading(tuple(f"{s}_max_hr17_bpm" for s in dg.SOURCES), "min", True, 140.0, "bpm",
                   "the slowest source's fastest 17-beat rate")


def main() -> int:
    return bench_main(__doc__, "tachy_agree_gate.py", TACHY, AGREE, reference_agree=True, short="tachy")


if __name__ == "__main__":
    raise SystemExit(main())
