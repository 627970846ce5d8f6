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

import warnings

import numpy as np

from .beats import ecg_peaks, fill_nan, filtered, match_fraction, percentiles, pulse_peaks
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


def _quality_batch(raw: np.ndarray, nan_frac: np.ndarray, fs_hz: int) -> np.ndarray:
    """[B, 4, 3]: NaN fraction, flat fraction (1 s blocks with no variation), saturation fraction per source."""
    B, S, n = raw.shape
    finite = np.isfinite(raw)
    count = finite.sum(-1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        absmax = np.nanmax(np.abs(raw), axis=-1)
        lo, hi = np.nanmin(raw, axis=-1), np.nanmax(raw, axis=-1)
        nblk = n // fs_hz
        blocks = raw[..., : nblk * fs_hz].reshape(B, S, nblk, fs_hz)
        rng = np.nanmax(blocks, axis=-1) - np.nanmin(blocks, axis=-1)
        thr = 1e-6 * np.maximum(1.0, absmax)
        flat = np.mean(~(rng > thr[..., None]), axis=-1)
        sat_n = ((raw <= lo[..., None]) | (raw >= hi[..., None])).sum(-1)
    sat = np.where(hi > lo, sat_n / np.maximum(count, 1), 1.0)
    few = count < fs_hz
    return np.stack([nan_frac, np.where(few, 1.0, flat), np.where(few, 0.0, sat)], axis=-1)


def _ecg_spectral_batch(filled: np.ndarray, fs_hz: int) -> np.ndarray:
    """[B, 2, 5]: kurtosis, QRS-band power ratio, dominant frequency (Hz), its concentration, log low/high ratio."""
    x = filled - filled.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        kurt = np.where(sd > 0, np.mean(x**4, axis=-1) / sd**4, 0.0)
    last = x[..., -int(LAST_S * fs_hz) :]
    n = last.shape[-1]
    spec = np.abs(np.fft.rfft(last * np.hanning(n), axis=-1)) ** 2
    f = np.fft.rfftfreq(n, 1.0 / fs_hz)
    tot = spec[..., (f >= 0.5) & (f <= 40)].sum(-1)
    ok = tot > 0
    safe = np.where(ok, tot, 1.0)
    qrs = spec[..., (f >= 5) & (f <= 15)].sum(-1) / safe
    band = (f >= 1.5) & (f <= 10)
    dom = f[band][np.argmax(spec[..., band], axis=-1)]
    near = (f >= dom[..., None] - 0.5) & (f <= dom[..., None] + 0.5)
    conc = (spec * near).sum(-1) / safe
    low = spec[..., (f >= 1) & (f < 7)].sum(-1)
    high = spec[..., (f >= 7) & (f <= 30)].sum(-1)
    ratio = np.log10((low + 1e-12) / (high + 1e-12))
    z = np.zeros_like(kurt)
    return np.stack([kurt, np.where(ok, qrs, z), np.where(ok, dom, z), np.where(ok, conc, z), np.where(ok, ratio, z)], axis=-1)


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
    a_first = np.subtract(*percentiles(bp[:n8], [99, 1]))
    a_last = np.subtract(*percentiles(bp[-n4:], [99, 1]))
    return [med, width_ratio, change, float(a_last / a_first) if a_first > 0 else np.nan]


def _pulse_extra(filled: np.ndarray, bp: np.ndarray, fs_hz: int) -> list[float]:
    def amp(seg):
        lo, hi = percentiles(seg, [5, 95])
        return hi - lo

    n4 = int(4 * fs_hz)
    a_all, a_last = amp(bp[:-n4]), amp(bp[-n4:])
    return [float(a_all), float(a_last / a_all) if a_all > 0 else 0.0, float(np.median(filled))]


def extract(window: np.ndarray, mask: np.ndarray, fs_hz: int = FS_HZ) -> np.ndarray:
    """Feature vector (float64 [N_FEATURES]) of one raw window [5, n]: a batch of one."""
    return extract_batch(np.asarray(window)[None], np.asarray(mask)[None], fs_hz)[0]


def extract_batch(windows: np.ndarray, masks: np.ndarray, fs_hz: int = FS_HZ) -> np.ndarray:
    """Features of a batch [B, 5, n] -> [B, N_FEATURES]. Filtering, quality and spectra run on the whole batch."""
    windows = np.asarray(windows)
    if len(windows) == 0:
        return np.empty((0, N_FEATURES))
    B, _, n = windows.shape
    raw = windows[:, :4]
    filled, nan_frac = fill_nan(raw.reshape(B * 4, n))
    filled, nan_frac = filled.reshape(B, 4, n), nan_frac.reshape(B, 4)
    present = np.asarray(masks, dtype=bool)[:, :4] & (nan_frac < 1.0)
    bp = np.zeros_like(filled)
    for sl, kind in ((slice(0, 2), "ecg"), (slice(2, 4), "pulse")):
        rows = present[:, sl].any(axis=1)
        if rows.any():
            bp[rows, sl] = filtered(filled[rows, sl], kind, fs_hz)
    quality = _quality_batch(raw, nan_frac, fs_hz)
    spectral = _ecg_spectral_batch(filled[:, :2], fs_hz)
    out = np.empty((B, N_FEATURES))
    for b in range(B):
        out[b] = _assemble(filled[b], bp[b], present[b], quality[b], spectral[b], n / fs_hz, fs_hz)
    return out


def _assemble(filled, bp, present, quality, spectral, span: float, fs_hz: int) -> list[float]:
    """One window's vector from its batch-computed parts plus per-source beat detection."""
    out: list[float] = []
    beats: dict[str, np.ndarray] = {}
    rh: dict[str, list[float]] = {}
    last0 = span - LAST_S
    for i, s in enumerate(SOURCES):
        is_ecg = i < 2
        n_extra = len(ECG_EXTRA) if is_ecg else len(PULSE_EXTRA)
        if not present[i]:
            out += [np.nan] * (len(QUALITY) + 2 * len(RHYTHM) + n_extra)
            continue
        q = quality[i].tolist()
        if is_ecg:
            t, widths = ecg_peaks(bp[i], fs_hz, widths=True)
        else:
            t = pulse_peaks(bp[i], fs_hz, floor=5.0 if s == "ABP" else 1e-3)
        beats[s] = t
        whole = _rhythm(t, span)
        if q[0] < 0.2 and q[1] < 0.5:  # good enough to vote in the consensus
            rh[s] = whole
        out += q + whole + _rhythm(t[t >= last0] - last0, LAST_S)
        if is_ecg:
            out += spectral[i].tolist() + _morphology(filled[i], bp[i], t, widths, fs_hz)
        else:
            out += _pulse_extra(filled[i], bp[i], fs_hz)
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
    return out


def alarm_onehot(alarm_types) -> np.ndarray:
    """One column per alarm type (the alarm type is an input of every model)."""
    idx = np.array([ALARM_TYPES.index(a) for a in alarm_types])
    out = np.zeros((len(idx), len(ALARM_TYPES)))
    out[np.arange(len(idx)), idx] = 1.0
    return out
