"""Signal features of one window for the alarm verdict: rhythm, pulse, agreement, quality, spectrum.

``extract(window, mask)`` maps a raw window [5, n] (slots ECG1, ECG2, ABP, PPG, RESP; 250 Hz; NaN allowed)
to a fixed-length float vector named by ``FEATURE_NAMES``. A missing slot gives NaN for its features
(tree models take NaN natively; the linear model imputes), never an error.

Rhythm features per source (each ECG lead from QRS times, ABP and PPG from pulse times), over the whole
window and over its last 8 s:
    n_beats, hr_bpm (median), min_hr5_bpm (slowest 5 beats: bradycardia), max_hr17_bpm (fastest 17 beats:
    tachycardia), max_hr5_bpm (fastest 5 beats: ventricular tachycardia), max_gap_s (longest pause, window
    edges included: asystole), rr_cv (irregularity).
Quality per source: NaN fraction, flat fraction (1 s blocks with no variation), saturation fraction.
ECG only: kurtosis, QRS-band power ratio, dominant frequency and its spectral concentration (ventricular
flutter/fibrillation), low/high band ratio (wide QRS), lead-to-lead beat agreement.
Pulse only: pulse amplitude (mmHg for ABP) and its drop in the last 4 s, mean ABP (mmHg).
Consensus across sources: pause all sources agree on, slowest/fastest rate every source supports,
ECG rate minus pulse rate.
"""

from __future__ import annotations

import numpy as np

from .beats import ecg_peaks, fill_nan, filtered, match_fraction, pulse_peaks
from .data import ALARM_TYPES, FS_HZ

RHYTHM = ("n_beats", "hr_bpm", "min_hr5_bpm", "max_hr17_bpm", "max_hr5_bpm", "max_gap_s", "rr_cv")
QUALITY = ("nan_frac", "flat_frac", "sat_frac")
ECG_EXTRA = ("kurtosis", "qrs_power_ratio", "dom_freq_hz", "spec_conc", "low_high_ratio", "qrs_width_s",
             "qrs_width_last_ratio", "low_high_change", "amp_last_ratio")
PULSE_EXTRA = ("amp", "amp_drop_last4s", "mean_level")
CONSENSUS = ("cons_max_gap_s", "cons_min_hr5_bpm", "cons_max_hr17_bpm", "cons_max_hr5_bpm", "ecg_minus_pulse_bpm", "ecg_agreement", "n_good_sources")
SOURCES = ("ECG1", "ECG2", "ABP", "PPG")
LAST_S = 8.0


def _names() -> list[str]:
    names: list[str] = []
    for s in SOURCES:
        names += [f"{s}_{q}" for q in QUALITY]
        names += [f"{s}_{r}" for r in RHYTHM]
        names += [f"{s}_last_{r}" for r in RHYTHM]
        names += [f"{s}_{e}" for e in (ECG_EXTRA if s.startswith("ECG") else PULSE_EXTRA)]
    names += list(CONSENSUS)
    return names


FEATURE_NAMES: tuple[str, ...] = tuple(_names())
N_FEATURES = len(FEATURE_NAMES)


def _rhythm(t: np.ndarray, span_s: float) -> list[float]:
    """Rhythm features of beat times ``t`` (s) inside a span of ``span_s`` seconds."""
    n = len(t)
    edges = np.concatenate([[0.0], t, [span_s]])
    max_gap = float(np.diff(edges).max())
    if n < 2:
        return [n, 0.0, 0.0, 0.0, 0.0, max_gap, np.nan]
    rr = np.diff(t)
    hr = 60.0 / np.median(rr)

    def extreme_rate(k: int, fastest: bool) -> float:
        k = min(k, len(rr))
        means = np.convolve(rr, np.full(k, 1.0 / k), mode="valid")
        return 60.0 / (means.min() if fastest else means.max())

    slowest = min(extreme_rate(4, False), 60.0 / max_gap)  # a long pause is the slowest rhythm there is
    return [n, hr, slowest, extreme_rate(16, True), extreme_rate(4, True), max_gap, float(rr.std() / rr.mean())]


def _quality(raw: np.ndarray, nan_frac: float, fs_hz: int) -> list[float]:
    x = raw[np.isfinite(raw)]
    if x.size < fs_hz:
        return [nan_frac, 1.0, 0.0]
    nblk = raw.size // fs_hz
    blocks = raw[: nblk * fs_hz].reshape(nblk, fs_hz)
    with np.errstate(invalid="ignore"):
        rng = np.nanmax(blocks, axis=1) - np.nanmin(blocks, axis=1)
    flat = float(np.mean(~(rng > 1e-6 * max(1.0, np.abs(x).max()))))
    lo, hi = x.min(), x.max()
    sat = float(np.mean((x <= lo) | (x >= hi))) if hi > lo else 1.0
    return [nan_frac, flat, sat]


def _morphology(filled: np.ndarray, bp: np.ndarray, t: np.ndarray, w: np.ndarray, fs_hz: int) -> list[float]:
    """QRS width (s), widest 4-beat run in the last 8 s relative to the window, band-ratio and amplitude change."""
    span = len(bp) / fs_hz
    if len(w) >= 2:
        med = float(np.median(w))
        last = w[t >= span - LAST_S]
        run = np.convolve(last, np.full(min(4, len(last)), 1.0 / min(4, len(last))), mode="valid").max() if len(last) else med
        width_ratio = float(run / med) if med > 0 else np.nan
    else:
        med, width_ratio = np.nan, np.nan

    def band_ratio(seg):
        spec = np.abs(np.fft.rfft(seg - seg.mean())) ** 2
        f = np.fft.rfftfreq(len(seg), 1.0 / fs_hz)
        return np.log10((spec[(f >= 1) & (f < 7)].sum() + 1e-12) / (spec[(f >= 7) & (f <= 30)].sum() + 1e-12))

    n4, n8 = int(4 * fs_hz), int(LAST_S * fs_hz)
    change = float(band_ratio(filled[-n4:]) - band_ratio(filled[:n8]))
    a_first = np.subtract(*np.percentile(bp[:n8], [99, 1]))
    a_last = np.subtract(*np.percentile(bp[-n4:], [99, 1]))
    return [med, width_ratio, change, float(a_last / a_first) if a_first > 0 else np.nan]


def _ecg_extra(filled: np.ndarray, bp: np.ndarray, fs_hz: int) -> list[float]:
    x = filled - filled.mean()
    sd = x.std()
    kurt = float(np.mean(x**4) / sd**4) if sd > 0 else 0.0
    last = x[-int(LAST_S * fs_hz) :]
    spec = np.abs(np.fft.rfft(last * np.hanning(len(last)))) ** 2
    f = np.fft.rfftfreq(len(last), 1.0 / fs_hz)
    tot = spec[(f >= 0.5) & (f <= 40)].sum()
    if tot <= 0:
        return [kurt, 0.0, 0.0, 0.0, 0.0]
    qrs = spec[(f >= 5) & (f <= 15)].sum() / tot
    band = (f >= 1.5) & (f <= 10)
    fb, sb = f[band], spec[band]
    dom = float(fb[np.argmax(sb)])
    conc = float(spec[(f >= dom - 0.5) & (f <= dom + 0.5)].sum() / tot)
    low = spec[(f >= 1) & (f < 7)].sum()
    high = spec[(f >= 7) & (f <= 30)].sum()
    return [kurt, float(qrs), dom, conc, float(np.log10((low + 1e-12) / (high + 1e-12)))]


def _pulse_extra(filled: np.ndarray, bp: np.ndarray, fs_hz: int) -> list[float]:
    def amp(seg):
        lo, hi = np.percentile(seg, [5, 95])
        return hi - lo

    n4 = int(4 * fs_hz)
    a_all, a_last = amp(bp[:-n4]), amp(bp[-n4:])
    return [float(a_all), float(a_last / a_all) if a_all > 0 else 0.0, float(np.median(filled))]


def extract(window: np.ndarray, mask: np.ndarray, fs_hz: int = FS_HZ) -> np.ndarray:
    """Feature vector (float64 [N_FEATURES]) of one raw window [5, n]."""
    window = np.asarray(window)
    span = window.shape[1] / fs_hz
    filled, nan_frac = fill_nan(window[:4])
    present = np.asarray(mask[:4], dtype=bool) & (nan_frac < 1.0)
    bp = np.zeros_like(filled)
    if present[:2].any():
        bp[:2] = filtered(filled[:2], "ecg", fs_hz)
    if present[2:].any():
        bp[2:] = filtered(filled[2:], "pulse", fs_hz)
    out: list[float] = []
    beats: dict[str, np.ndarray] = {}
    good: dict[str, bool] = {}
    for i, s in enumerate(SOURCES):
        is_ecg = i < 2
        n_extra = len(ECG_EXTRA) if is_ecg else len(PULSE_EXTRA)
        if not present[i]:
            out += [np.nan] * (len(QUALITY) + 2 * len(RHYTHM) + n_extra)
            continue
        q = _quality(window[i], float(nan_frac[i]), fs_hz)
        if is_ecg:
            t, widths = ecg_peaks(bp[i], fs_hz, widths=True)
        else:
            t = pulse_peaks(bp[i], fs_hz, floor=5.0 if s == "ABP" else 1e-3)
        beats[s] = t
        good[s] = q[0] < 0.2 and q[1] < 0.5
        last0 = span - LAST_S
        out += q + _rhythm(t, span) + _rhythm(t[t >= last0] - last0, LAST_S)
        if is_ecg:
            out += _ecg_extra(filled[i], bp[i], fs_hz) + _morphology(filled[i], bp[i], t, widths, fs_hz)
        else:
            out += _pulse_extra(filled[i], bp[i], fs_hz)
    rh = {s: _rhythm(t, span) for s, t in beats.items() if good[s]}
    if rh:
        col = {k: np.array([v[j] for v in rh.values()]) for j, k in enumerate(RHYTHM)}
        ecg_hr = [rh[s][1] for s in ("ECG1", "ECG2") if s in rh]
        pul_hr = [rh[s][1] for s in ("ABP", "PPG") if s in rh]
        diff = float(np.median(ecg_hr) - np.median(pul_hr)) if ecg_hr and pul_hr else np.nan
        out += [col["max_gap_s"].min(), col["min_hr5_bpm"].max(), col["max_hr17_bpm"].min(), col["max_hr5_bpm"].min(), diff]
    else:
        out += [np.nan] * 5
    agree = match_fraction(beats["ECG1"], beats["ECG2"]) if "ECG1" in beats and "ECG2" in beats else np.nan
    out += [agree, float(len(rh))]
    return np.asarray(out, dtype=np.float64)


def extract_batch(windows: np.ndarray, masks: np.ndarray, fs_hz: int = FS_HZ) -> np.ndarray:
    """Features of a batch [B, 5, n] -> [B, N_FEATURES]."""
    return np.stack([extract(w, m, fs_hz) for w, m in zip(windows, masks)]) if len(windows) else np.empty((0, N_FEATURES))


def alarm_onehot(alarm_types) -> np.ndarray:
    """One column per alarm type (the alarm type is an input of every model)."""
    idx = np.array([ALARM_TYPES.index(a) for a in alarm_types])
    out = np.zeros((len(idx), len(ALARM_TYPES)))
    out[np.arange(len(idx)), idx] = 1.0
    return out
