"""A sixth reading for the VT gate: consecutive fast beats unlike the patient's usual beat, the usual beat taken from the
minutes before the alarm. Chosen on inner folds, scored on outer folds.

    .venv/bin/python bench/history_gate.py [--data DIR] [--seeds 5] [--first-seed 0]

``bench/ectopy_gate.py`` counted fast beats unlike the median beat of the window's first 8 s, and 30 of 59 true VT
alarms read under 4: in a true alarm the first 8 s are often ectopic or already VT, so the "usual" beat was not usual.
The streaming service has each patient's whole stream; the median beat over the minutes before the window is the
patient's dominant beat even when the window itself is mostly abnormal.

Written before any value of this reading was computed (the plan this bench runs, nothing tuned after):

- **Reading.** Per ECG lead, the features' QRS detector on the lead's whole record up to the alarm (NaN-filled, as
  ``bench/verdict_ideas.py``'s morphology does); beats are the wide-band (1-40 Hz) ECG +-100 ms around each QRS, mean
  removed. The template is the median of the beats before the 16 s alarm window (at least 20 of them, else the lead
  gives no reading). In the window, a beat is "fast and unlike" when it comes under 0.6 s after the beat before (over
  100 bpm) and correlates under 0.7 with the template (the same two numbers as ``ectopy_gate``). The reading is the
  longest run of consecutive such beats, the larger of the two leads; none (never gated) when no lead gives one.
- **Gate.** The run shorter than the definition's 5 beats by 20 / 30 / 40 / 50 % (under 4, 3.5, 3, 2.5 beats), chosen on
  the inner out-of-fold probabilities after the served gate (``models.definition_gate.fit``'s rule), applied after the
  served gate (``bench/second_gate.py``).
- **Kept (served) only if** on both fold-seed sets (0..4 and 5..9) the paired difference to the served gate is positive
  in the mean and on at least 4 of 5 fold seeds.

Result (one run per fold-seed set; readings 1 min, then 10 s each): **not kept**. The patient's own template helps the
reading (true VT alarms: median run 5 beats, against 3 with the first-8 s template) but false ones read long runs too
(median 4, a quarter 8 or more: artefact and ectopy are unlike the usual beat and fast), and 21 of the 59 true alarms
still read under 4. No inner fit chooses a limit on any of the 50 outer folds: +0.00 on both fold-seed sets.

Readings are cached in ~/.cache/holmes-icu/history_run_<n>.npy. Writes bench/results/history_gate.json and
history_gate.png (the paired differences).
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
from verdict_ideas import FS, _beats, _corr, _run, cache_path  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.beats import fill_nan  # noqa: E402
from models.data import ALARM_S  # noqa: E402

WINDOW_S = 16
MIN_HISTORY_BEATS = 20
RUN = dg.Reading(("n/a",), "max", True, 5.0, "beats", "longest run of fast beats unlike the patient's beat before the window",
                 zero_is_none=False)
RULE = "served gate + VT history gate (consecutive fast beats unlike the patient's usual beat, chosen inside)"


def history_run(record) -> float:
    """The reading of one record (NaN: no lead gives one)."""
    end = int(ALARM_S * FS)
    best = np.nan
    for s in (0, 1):
        x = record.signals[s, :end].astype(np.float64)
        if not record.mask[s] or not np.isfinite(x).any():
            continue
        _, idx, _, beats = _beats(fill_nan(x[None])[0][0])
        before = idx < end - WINDOW_S * FS
        if before.sum() < MIN_HISTORY_BEATS or (~before).sum() < 2:
            continue
        corr = _corr(beats[~before], np.median(beats[before], axis=0))
        t = idx[~before] / FS
        run = _run([t[k] - t[k - 1] < 0.6 and corr[k] < 0.7 for k in range(1, len(t))])
        best = float(run) if not np.isfinite(best) else max(best, float(run))
    return best


def history_read(b) -> np.ndarray:
    """[records] ``history_run`` on VT alarms, NaN elsewhere (kept in the cache folder)."""
    from tqdm import tqdm

    cache = cache_path(b.n).parent / f"history_run_{b.n}.npy"
    if cache.is_file():
        return np.load(cache)
    reading = np.full(b.n, np.nan)
    for i in tqdm(np.flatnonzero(b.T == VT), desc="history readings", unit="record"):
        reading[i] = history_run(b.records[i])
    np.save(cache, reading)
    return reading


def main() -> int:
    return second_gate.reading_main(__doc__, "history_gate.py", history_read, RULE, RUN, "VT history gate", "run", under=4)


if __name__ == "__main__":
    raise SystemExit(main())
