"""A second reading for the VT gate: how wide the beats of the fastest run are, chosen on inner folds, scored on outer
folds.

    .venv/bin/python bench/width_gate.py [--data DIR] [--seeds 5] [--first-seed 0]

Ventricular tachycardia is a run of ventricular beats, and a ventricular beat's QRS is wide (>= 120 ms). Most false VT
alarms the served verdict still calls true are fast (their fastest 5 beats read over 100 bpm on an ECG lead, so the
rate gate of ``models.definition_gate`` lets them through): a fast narrow-complex rhythm or artefact the monitor
counted as ventricular beats. The features' ``qrs_width_s`` cannot tell: it is the width of the 120 ms integrated slope,
0.12 s on almost every window. This bench measures the width on the wide-band ECG instead.

Written before any width was computed (the plan this bench runs, nothing tuned after):

- **Reading.** Per ECG lead the record has (mask on, some finite samples): the lead NaN-filled, its QRS times from the
  features' detector (``models.beats.ecg_peaks_rows`` on the ``ecg`` band-pass); on the 1-40 Hz band-passed lead, for
  each QRS at time t the sample c of largest |slope| within t +- 100 ms, and the beat's width = the time from the
  first to the last sample within c +- 120 ms whose |slope| (3-sample mean) is at least 20 % of that at c. The
  fastest run is the 5 consecutive QRS with the shortest span; the lead reads the median width of those 5. The window
  reads the widest of its leads (the reading most in favour of the alarm, like the rate gate's); none (never gated)
  when no lead has 5 QRS.
- **Gate.** Below the definition's 120 ms by a margin among 20 / 30 / 40 / 50 % (96 / 84 / 72 / 60 ms), chosen per
  outer fold on the inner out-of-fold probabilities after the served rate gate (``models.definition_gate.fit``'s rule:
  ties to the larger margin, none when no margin beats no gate, cap (true + 1) / (gated + 2) below the cut), applied
  after the served rate gate.
- **Kept (served) only if** on both fold-seed sets (0..4, and 5..9) the paired difference to the served gate is
  positive in the mean and on at least 4 of 5 fold seeds.

Result (one run per fold-seed set, 10 s each on the kept fold predictions): **not kept**. The reading does not separate
the classes the way the definition says: the median over VT alarms is 136 ms for the true ones and 156 ms for the false
ones (artefact and noise read wide). Against the served gate: seeds 0..4 80.76 +/- 2.18 vs 81.30 +/- 2.15, -0.54 +/-
0.19, 0/5 seeds better (74 outer windows gated, 6 of them true alarms); seeds 5..9 80.32 vs 81.02, -0.70 +/- 0.39, 0/5
(83 gated, 7 true).

Writes bench/results/width_gate.json (per rule: score, AUROC, ECE, TPR, TNR, per type, mean and spread; the paired
difference to the served gate; margins chosen; outer windows gated and how many were true) and width_gate.png (the
paired differences; the reading against the served probability on VT windows).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import second_gate  # noqa: E402
from second_gate import VT  # noqa: E402
from feature_sets import paired_bars  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.beats import ecg_peaks_rows, fill_nan, filtered  # noqa: E402
from models.data import FS_HZ as FS, alarm_window  # noqa: E402
from verdict_ideas import cache_path  # noqa: E402

WIDE = signal.butter(2, [1.0, 40.0], btype="bandpass", fs=FS, output="sos")
WIDTH = dg.Reading(("ECG1_qrs_width_s", "ECG2_qrs_width_s"), "max", True, 0.12, "s",
                   "median wide-band QRS width of the fastest 5 beats, widest ECG lead")
WIDTH_RULE = "served gate + VT QRS width gate (margins 20-50 %, chosen inside)"


def beat_widths(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(QRS times s, widths s) of one NaN-free ECG lead (the plan above)."""
    t, _ = ecg_peaks_rows(filtered(x[None], "ecg", FS), FS)[0]
    wide = signal.sosfiltfilt(WIDE, x)
    slope = np.abs(np.convolve(np.diff(wide, prepend=wide[0]), np.ones(3) / 3, mode="same"))
    r1, r2 = int(0.1 * FS), int(0.12 * FS)
    times, widths = [], []
    for ti in t:
        i = int(round(ti * FS))
        a, b = max(i - r1, 0), min(i + r1 + 1, len(x))
        c = a + int(np.argmax(slope[a:b]))
        lo, hi = max(c - r2, 0), min(c + r2 + 1, len(x))
        above = np.flatnonzero(slope[lo:hi] >= 0.2 * slope[c])
        times.append(ti)
        widths.append((above[-1] - above[0]) / FS if slope[c] > 0 else np.nan)
    return np.array(times), np.array(widths)


def width_reading(record) -> list[float]:
    """[ECG1, ECG2] median width of the fastest 5 QRS (NaN: lead absent or < 5 QRS)."""
    W = alarm_window(record).astype(np.float64)
    out = []
    for s in (0, 1):
        if not record.mask[s] or not np.isfinite(W[s]).any():
            out.append(np.nan)
            continue
        t, w = beat_widths(fill_nan(W[s][None])[0][0])
        if len(t) < 5:
            out.append(np.nan)
            continue
        k = int(np.argmin(t[4:] - t[:-4]))
        out.append(float(np.nanmedian(w[k:k + 5])))
    return out


def widths(records) -> np.ndarray:
    path = cache_path(len(records)).with_name(f"width_gate_{len(records)}.npz")
    names = [r.name for r in records]
    if path.is_file():
        d = np.load(path)
        if list(d["records"]) == names:
            return d["widths"]
    out = np.array([width_reading(r) for r in records])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, records=np.array(names), widths=out)
    return out


def width_read(b) -> np.ndarray:
    """[records] the widest ECG lead's reading on VT alarms (NaN elsewhere and where neither lead gives one)."""
    return np.where(b.T == VT, second_gate.row_max(widths(b.records)), np.nan)


def main() -> int:
    args, out_path, b = second_gate.args_and_bench(__doc__, "width_gate")
    T, y = b.T, b.y
    t0 = time.perf_counter()
    wread = width_read(b)
    width_s = round(time.perf_counter() - t0, 1)
    out = second_gate.run(b, WIDTH_RULE, VT, wread, WIDTH)
    vt = T == VT
    extra = {"reading": WIDTH.words, "width_s": width_s,
             "vt_reading_quantiles_ms": {lab: np.round(1000 * np.nanpercentile(wread[vt & (y == v)], [0, 5, 25, 50, 75, 95, 100]), 1).tolist()
                                         for lab, v in (("true", 1), ("false", 0))},
             "vt_no_reading": int((vt & ~np.isfinite(wread)).sum())}
    second_gate.write("width_gate.py", out, extra, out_path, "VT QRS width gate", plot=lambda doc, p, path: _plot(doc, p, wread, y, vt, path))
    return 0


def _plot(out: dict, p: np.ndarray, wread: np.ndarray, y: np.ndarray, vt: np.ndarray, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.5))
    paired_bars(a0, out["summary"], out["fold_seeds"])
    for lab, col, mk in ((0, "tab:blue", "o"), (1, "tab:red", "^")):
        m = vt & (y == lab) & np.isfinite(wread)
        a1.scatter(1000 * wread[m], p[m], s=14, c=col, marker=mk, alpha=0.7, label=("true" if lab else "false") + " VT alarm")
    for mg in dg.MARGINS:
        a1.axvline(120 * (1 - mg), color="grey", lw=0.6, ls=":")
    a1.axhline(dg.CUT, color="k", lw=0.8, ls="--")
    a1.set_xlabel("widest lead's median QRS width of the fastest 5 beats (ms)")
    a1.set_ylabel("served P(true), outer folds (mean over fold seeds)")
    a1.set_title("VT alarms: QRS width against the served verdict")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
