"""A pulse reading for the VT gate: does the arterial or finger pulse go on unchanged through the fastest ECG run?
Chosen on inner folds, scored on outer folds.

    .venv/bin/python bench/pulse_gate.py [--data DIR] [--seeds 5] [--first-seed 0]

A run of ventricular beats fills the ventricles poorly: during true VT the pulse weakens, drops beats or follows the
ECG's new rate. When the fast "run" on the ECG is artefact, the pulse goes on as before. The features' pulse columns
(``ABP_amp_drop_last4s``, ``ecg_minus_pulse_bpm``) look at fixed stretches of the window, not at the run; this reading
is aligned with it.

Written before any reading was computed (the plan this bench runs, nothing tuned after):

- **The run.** On each ECG lead the record has, the QRS times of the features' detector; the lead with the fastest
  5-QRS span; its run is [a, b] from the first to the fifth QRS of that span, its rate 240 / (b - a) bpm.
- **The pulse.** ABP if the record has it with at least 5 pulses in the window (``models.beats.pulse_peaks_rows``, the
  features' floors), else PPG by the same rule, else no reading (never gated).
- **Unaffected** (the reading that gates) when all three hold: the pulse amplitude (95th - 5th percentile of the
  band-passed pulse) over [a, b + 0.5 s] is at least 0.8 of that over the 6 s before a; the median interval between
  pulses over [a, b + 0.5 s] (at least 2 pulses there) is within 15 % of the median over the 6 s before a; and the ECG
  run's rate is at least 1.3 times the pulse rate before a. The run must start at least 3 s into the window (else no
  reading).
- **Gate.** VT windows whose pulse is unaffected are capped at (true + 1) / (gated + 2) of the inner fit data, when
  that is below the cut and the capping raises the inner challenge score (``models.definition_gate.fit``'s rule with
  a 0/1 reading); fitted after the served rate gate on its output, applied after it.
- **Kept (served) only if** on both fold-seed sets (0..4 and 5..9) the paired difference to the served gate is positive
  in the mean and on at least 4 of 5 fold seeds.

Result (one run per fold-seed set, 9 s each): **not kept; the gate is never chosen**. 11 of the 55 true VT alarms with a
reading have a pulse that goes on unchanged through the run (50 of 126 false ones): no inner fit finds capping them
worth it, so on all 50 outer folds of both seed sets the verdicts are the served gate's (81.30 and 81.02, +0.00).

Writes bench/results/pulse_gate.json and pulse_gate.png (the paired differences).
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
from models import definition_gate as dg  # noqa: E402
from models.beats import ecg_peaks_rows, fill_nan, filtered, percentiles_rows, pulse_peaks_rows  # noqa: E402
from models.data import FS_HZ as FS, alarm_window  # noqa: E402

FLOORS = {2: 5.0, 3: 1e-3}  # ABP mmHg, PPG: the features' smallest pulse prominence
UNAFFECTED = dg.Reading(("n/a",), "max", True, 1.0, "", "0 when the pulse goes on unchanged through the fastest ECG run")
PULSE_RULE = "served gate + VT pulse-unaffected gate (chosen inside)"


def pulse_reading(record) -> dict:
    """{"unaffected": 0/1 or NaN, and what it was read from} of the alarm window (the plan above)."""
    W = alarm_window(record).astype(np.float64)
    n = W.shape[1]
    run = None
    for s in (0, 1):
        if not record.mask[s] or not np.isfinite(W[s]).any():
            continue
        t, _ = ecg_peaks_rows(filtered(fill_nan(W[s][None])[0], "ecg", FS), FS)[0]
        if len(t) < 5:
            continue
        k = int(np.argmin(t[4:] - t[:-4]))
        if run is None or t[k + 4] - t[k] < run[1] - run[0]:
            run = (float(t[k]), float(t[k + 4]))
    if run is None:
        return {"unaffected": np.nan, "why": "no ECG run"}
    a, b = run
    if a < 3.0:
        return {"unaffected": np.nan, "why": "run starts before 3 s"}
    for s in (2, 3):
        if not record.mask[s] or not np.isfinite(W[s]).any():
            continue
        bp = filtered(fill_nan(W[s][None])[0], "pulse", FS)
        p = pulse_peaks_rows(bp, FS, [FLOORS[s]])[0]
        if len(p) < 5:
            continue
        x = bp[0]
        i0, ia, ib = int(max(a - 6.0, 0) * FS), int(a * FS), min(int((b + 0.5) * FS), n)
        amp = lambda u, v: float(np.diff(percentiles_rows(x[None, u:v], [5, 95])[0])[0])  # noqa: E731
        before, inrun = p[(p >= a - 6.0) & (p < a)], p[(p >= a) & (p <= b + 0.5)]
        if len(before) < 3 or ib - ia < 10:
            return {"unaffected": np.nan, "why": "too few pulses before the run", "source": s}
        rr_before = float(np.median(np.diff(before)))
        amp_ratio = amp(ia, ib) / max(amp(i0, ia), 1e-9)
        rr_ratio = float(np.median(np.diff(inrun))) / rr_before if len(inrun) >= 2 else np.inf
        ecg_rate, pulse_rate = 240.0 / (b - a), 60.0 / rr_before
        un = amp_ratio >= 0.8 and abs(rr_ratio - 1.0) <= 0.15 and ecg_rate >= 1.3 * pulse_rate
        return {"unaffected": float(un), "source": s, "amp_ratio": amp_ratio, "rr_ratio": rr_ratio, "ecg_rate": ecg_rate,
                "pulse_rate": pulse_rate}
    return {"unaffected": np.nan, "why": "no pulse source"}


def pulse_read(b) -> np.ndarray:
    """[records] on VT alarms 0 when the pulse goes on unaffected, 1 when affected (NaN elsewhere and with no reading):
    the gate caps when the reading is below 1 * (1 - 0.5)."""
    return np.array([1.0 - pulse_reading(r)["unaffected"] if t == VT else np.nan for r, t in zip(b.records, b.T)])


def main() -> int:
    args, out_path, b = second_gate.args_and_bench(__doc__, "pulse_gate")
    T, y = b.T, b.y
    vt = T == VT
    un = pulse_read(b)
    out = second_gate.run(b, PULSE_RULE, VT, un, UNAFFECTED, (0.5,))
    counts = {lab: {"unaffected": int(((un == 0) & vt & (y == v)).sum()), "affected": int(((un == 1) & vt & (y == v)).sum()),
                    "no reading": int((~np.isfinite(un) & vt & (y == v)).sum())} for lab, v in (("true", 1), ("false", 0))}
    second_gate.write("pulse_gate.py", out, {"vt_readings": counts}, out_path, "VT pulse-unaffected gate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
