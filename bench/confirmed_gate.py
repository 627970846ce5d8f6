"""A third reading for the VT gate: the fastest 5-beat rate counting only beats a second, different QRS detector also
finds. Chosen on inner folds, scored on outer folds.

    .venv/bin/python bench/confirmed_gate.py [--data DIR] [--seeds 5] [--first-seed 0]

The served VT gate reads the fastest 5 beats of the features' detector (the 120 ms integrated squared slope). Noise
and movement artefact can fire it fast enough to pass 100 bpm; signal-quality work on this challenge checks a beat by
asking a detector built another way (the bSQI idea). Here the second detector looks for prominent peaks of the
rectified wide-band ECG instead of slope energy.

Written before any reading was computed (the plan this bench runs, nothing tuned after):

- **Beats.** Per ECG lead the record has (mask on, some finite samples), NaN-filled: detector A, the features' QRS
  times (``models.beats.ecg_peaks_rows``); detector B, the peaks of |1-40 Hz band-passed lead| with prominence at
  least 0.4 of that signal's 1st-99th percentile range and at least 200 ms apart (``scipy.signal.find_peaks``). A
  beat is confirmed when B has a peak within 100 ms of A's.
- **Reading.** Per lead, the fastest 5 consecutive confirmed beats (shortest span of 5, rate 240 / span); the window
  reads the fastest of its leads; none (never gated) when no lead has 5 confirmed beats.
- **Gate.** Below the definition's 100 bpm by a margin among 20 / 30 / 40 / 50 % (``models.definition_gate``'s VT
  limits and fit rule), fitted on the inner out-of-fold probabilities after the served gate, applied after it.
- **Kept (served) only if** on both fold-seed sets (0..4 and 5..9) the paired difference to the served gate is positive
  in the mean and on at least 4 of 5 fold seeds.

Result (one run per fold-seed set, 10 s each): **not kept; no effect**. The second detector confirms almost every fast
run: the confirmed rate's median is 143.5 bpm over true VT alarms and 135.6 over false ones (5th percentiles 101.5 and
65.1). The few windows it would gate are already under the cut after the served gate: +0.00 on both seed sets (4 and 9
outer windows gated, none of them true, no verdict changed).

Writes bench/results/confirmed_gate.json and confirmed_gate.png (the paired differences).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import second_gate  # noqa: E402
from second_gate import VT  # noqa: E402
from width_gate import WIDE  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.beats import ecg_peaks_rows, fill_nan, filtered  # noqa: E402
from models.data import FS_HZ as FS, alarm_window  # noqa: E402

CONFIRMED = dg.Reading(("n/a",), "max", True, 100.0, "bpm", "fastest 5-beat rate of beats both QRS detectors find, fastest ECG lead")
RULE = "served gate + VT confirmed-beat rate gate (margins 20-50 %, chosen inside)"


def confirmed_rate(record) -> float:
    """The window's reading (the plan above): NaN when no lead has 5 confirmed beats."""
    W = alarm_window(record).astype(np.float64)
    best = np.nan
    for s in (0, 1):
        if not record.mask[s] or not np.isfinite(W[s]).any():
            continue
        x = fill_nan(W[s][None])[0][0]
        a, _ = ecg_peaks_rows(filtered(x[None], "ecg", FS), FS)[0]
        r = np.abs(signal.sosfiltfilt(WIDE, x))
        lo, hi = np.percentile(r, [1, 99])
        b = signal.find_peaks(r, prominence=max(0.4 * (hi - lo), 1e-9), distance=int(0.2 * FS))[0] / FS
        if len(a) < 5 or len(b) == 0:
            continue
        j = np.clip(np.searchsorted(b, a), 0, len(b) - 1)
        d = np.minimum(np.abs(b[j] - a), np.abs(b[np.maximum(j - 1, 0)] - a))
        t = a[d <= 0.1]
        if len(t) < 5:
            continue
        rate = 240.0 / float(np.min(t[4:] - t[:-4]))
        best = rate if not np.isfinite(best) else max(best, rate)
    return best


def confirmed_read(b) -> np.ndarray:
    """[records] ``confirmed_rate`` on VT alarms, NaN elsewhere."""
    return np.array([confirmed_rate(r) if t == VT else np.nan for r, t in zip(b.records, b.T)])


def main() -> int:
    args, out_path, b = second_gate.args_and_bench(__doc__, "confirmed_gate")
    T, y = b.T, b.y
    vt = T == VT
    conf = confirmed_read(b)
    out = second_gate.run(b, RULE, VT, conf, CONFIRMED)
    extra = {"vt_reading_quantiles_bpm": {lab: np.round(np.nanpercentile(conf[vt & (y == v)], [5, 25, 50, 75, 95]), 1).tolist()
                                          for lab, v in (("true", 1), ("false", 0))},
             "vt_no_reading": {lab: int((vt & (y == v) & ~np.isfinite(conf)).sum()) for lab, v in (("true", 1), ("false", 0))},
             "vt_true_under_100": int((vt & (y == 1) & (conf < 100)).sum())}
    second_gate.write("confirmed_gate.py", out, extra, out_path, "VT confirmed-beat rate gate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
