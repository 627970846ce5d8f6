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
Consensus across the sources good enough to vote (see ``_votes``: a pulse must also beat regularly): pause
all voters agree on, slowest/fastest rate every voter supports, ECG rate minus pulse rate.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache

import numpy as np

from .beats import (box, ecg_beats_flat, ecg_peaks_rows, fill_nan, filtered, match_fraction, median_rows, median_small,
                    percentiles_rows, pulse_beats_flat, pulse_peaks_rows, rhythm)
from .data import ALARM_TYPES, FS_HZ
from .errors import InvalidFieldError

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
COUNT_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n.endswith("n_beats") or n == "n_good_sources")  # integers


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


@lru_cache(maxsize=8)
def _spectral_plan(n: int, fs_hz: int) -> dict:
    """Frequencies, Hann window and frequency bands (as index slices) of an ``n``-sample rfft, built once."""
    f = np.fft.rfftfreq(n, 1.0 / fs_hz)

    def band(mask):
        idx = np.flatnonzero(mask)
        return slice(idx[0], idx[-1] + 1)

    return {"f": f, "hann": np.hanning(n), "tot": band((f >= 0.5) & (f <= 40)), "qrs": band((f >= 5) & (f <= 15)),
            "dom": band((f >= 1.5) & (f <= 10)), "low": band((f >= 1) & (f < 7)), "high": band((f >= 7) & (f <= 30))}


def _seq_sum(x: np.ndarray) -> np.ndarray:
    """Left-to-right sum over the last axis.

    The features the models were trained on summed these bands through a boolean-mask index, whose result
    numpy lays out band-major, so ``.sum(-1)`` added left to right rather than pairwise (different last
    bits). That order is kept explicitly: bit-identical features, whatever the number of rows.
    """
    return np.add.accumulate(x, axis=-1)[..., -1]


def _ecg_spectral_rows(filled: np.ndarray, fs_hz: int) -> np.ndarray:
    """[..., 5]: kurtosis, QRS-band power ratio, dominant frequency (Hz), its concentration, log low/high ratio."""
    x = filled - filled.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = x * x  # (x*x)**2 rather than x**4: equal to ~1e-16 relative, and numpy's pow is slow for negative bases
        kurt = np.where(sd > 0, np.mean(sq * sq, axis=-1) / sd**4, 0.0)
    last = x[..., -int(LAST_S * fs_hz) :]
    p = _spectral_plan(last.shape[-1], fs_hz)
    f = p["f"]
    spec = np.abs(np.fft.rfft(last * p["hann"], axis=-1)) ** 2
    tot = _seq_sum(spec[..., p["tot"]])
    ok = tot > 0
    safe = np.where(ok, tot, 1.0)
    qrs = _seq_sum(spec[..., p["qrs"]]) / safe
    dom = f[p["dom"]][np.argmax(spec[..., p["dom"]], axis=-1)]
    near = (f >= dom[..., None] - 0.5) & (f <= dom[..., None] + 0.5)
    conc = (spec * near).sum(-1) / safe
    low = _seq_sum(spec[..., p["low"]])
    high = _seq_sum(spec[..., p["high"]])
    ratio = np.log10((low + 1e-12) / (high + 1e-12))
    z = np.zeros_like(kurt)
    return np.stack([kurt, np.where(ok, qrs, z), np.where(ok, dom, z), np.where(ok, conc, z), np.where(ok, ratio, z)], axis=-1)


def _band_ratio_rows(seg: np.ndarray, fs_hz: int) -> np.ndarray:
    """log10 of 1-7 Hz over 7-30 Hz power of each row (no window function; numpy's pairwise band sums)."""
    spec = np.abs(np.fft.rfft(seg - seg.mean(axis=-1, keepdims=True), axis=-1)) ** 2
    p = _spectral_plan(seg.shape[-1], fs_hz)
    return np.log10((spec[..., p["low"]].sum(-1) + 1e-12) / (spec[..., p["high"]].sum(-1) + 1e-12))


RATIO_CAP = 1e3  # amplitude ratios over a near-flat reference are capped (the development alarm windows reach 113)


def _ratio(num: np.ndarray, den: np.ndarray, where_zero: float) -> np.ndarray:
    """num / den, ``where_zero`` where den <= 0, capped at ``RATIO_CAP``: a flat first part of a window followed by
    signal gave ratios of 1e300 and more, which overflow the float32 that tree models compute in."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.minimum(np.where(den > 0, num / den, where_zero), RATIO_CAP)


def _morphology_rows(filled: np.ndarray, bp: np.ndarray, fs_hz: int) -> np.ndarray:
    """[R, 2]: change of the band ratio (last 4 s minus first 8 s) and amplitude ratio (last 4 s / first 8 s)."""
    n4, n8 = int(4 * fs_hz), int(LAST_S * fs_hz)
    change = _band_ratio_rows(filled[:, -n4:], fs_hz) - _band_ratio_rows(filled[:, :n8], fs_hz)
    p_first, p_last = percentiles_rows(bp[:, :n8], [99, 1]), percentiles_rows(bp[:, -n4:], [99, 1])
    a_first, a_last = p_first[:, 0] - p_first[:, 1], p_last[:, 0] - p_last[:, 1]
    return np.stack([change, _ratio(a_last, a_first, np.nan)], axis=-1)


def _widths(t: np.ndarray, w: np.ndarray, span: float) -> list[float]:
    """Median QRS width (s) and the widest 4-beat run in the last 8 s relative to it."""
    if len(w) < 2:
        return [np.nan, np.nan]
    med = float(median_small(w.tolist()))
    last = w[t >= span - LAST_S]
    run = np.convolve(last, box(min(4, len(last))), mode="valid").max() if len(last) else med
    return [med, float(run / med) if med > 0 else np.nan]


def _pulse_rows(filled: np.ndarray, bp: np.ndarray, fs_hz: int) -> np.ndarray:
    """[R, 3]: pulse amplitude (5-95 percentile range before the last 4 s), its last-4-s ratio, median level."""
    n4 = int(4 * fs_hz)
    p_all, p_last = percentiles_rows(bp[:, :-n4], [5, 95]), percentiles_rows(bp[:, -n4:], [5, 95])
    a_all, a_last = p_all[:, 1] - p_all[:, 0], p_last[:, 1] - p_last[:, 0]
    return np.stack([a_all, _ratio(a_last, a_all, 0.0), median_rows(filled)], axis=-1)


def extract(window: np.ndarray, mask: np.ndarray, fs_hz: int = FS_HZ, engine: str | None = None) -> np.ndarray:
    """Feature vector (float64 [N_FEATURES]) of one raw window [5, n]: a batch of one."""
    return extract_batch(np.asarray(window)[None], np.asarray(mask)[None], fs_hz, engine)[0]


CHUNK = 8  # windows per vectorised pass: temporaries stay ~0.5 MB, which the allocator reuses without page faults
ENGINES = ("auto", "compiled", "reference")


def _engine(engine: str | None) -> dict | None:
    """The compiled per-row stages (``models.beat_kernels.kernels()``) for ``engine``, or None for the reference path.

    None reads ``HOLMES_FEATURES_ENGINE`` (default ``auto``: compiled when numba is importable). ``reference`` is
    the scipy/numpy path the compiled one is measured against (``bench/features_equal.py``).
    """
    name = engine or os.environ.get("HOLMES_FEATURES_ENGINE") or "auto"
    if name not in ENGINES:
        raise InvalidFieldError("engine", f"must be one of {', '.join(ENGINES)}", name)
    if name == "reference":
        return None
    from .beat_kernels import kernels

    found = kernels()
    if name == "compiled" and found is None:
        raise InvalidFieldError("engine", "compiled needs numba (pip install numba)", name)
    return found


def warm_up(fs_hz: int = FS_HZ) -> bool:
    """Compile (or load from numba's disk cache) the compiled engine now, not on a stream's first window; returns
    whether the default engine is the compiled one. A noise window reaches every kernel."""
    x = np.random.default_rng(0).standard_normal((1, 5, 16 * fs_hz)) * np.array([1.0, 1.0, 20.0, 1.0, 1.0])[:, None]
    extract_batch(x, np.ones((1, 5), dtype=bool), fs_hz)
    return _engine(None) is not None


def extract_batch(windows: np.ndarray, masks: np.ndarray, fs_hz: int = FS_HZ, engine: str | None = None) -> np.ndarray:
    """Features of a batch [B, 5, n] -> [B, N_FEATURES].

    Filtering, quality, spectra, percentiles and slopes run on all present (window, source) rows of a chunk
    of ``CHUNK`` windows at once; peak search and rhythm statistics of the beat times run per row, all rows in
    one compiled call (``engine``: see ``_engine``). Each row is computed on its own, so a window's features do
    not depend on the rest of its batch.
    """
    windows = np.asarray(windows)
    masks = np.asarray(masks, dtype=bool)
    K = _engine(engine)
    if len(windows) <= CHUNK:
        return _extract_chunk(windows, masks, fs_hz, K)
    chunks = range(0, len(windows), CHUNK)
    return np.concatenate([_extract_chunk(windows[i : i + CHUNK], masks[i : i + CHUNK], fs_hz, K) for i in chunks])


def _flat(rows) -> tuple[np.ndarray, np.ndarray]:
    """(values one row after another, count per row) of a list of 1-D arrays."""
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    return (np.concatenate(rows) if len(rows) else np.empty(0)), counts


def _beat_stats(t: np.ndarray, counts: np.ndarray, span: float, K: dict | None) -> np.ndarray:
    """[R, 14]: ``rhythm`` over the whole window, then over its last ``LAST_S`` s, of each row's beat times."""
    if K:
        return K["rhythm_rows"](t, counts, span, LAST_S)
    last0 = span - LAST_S
    rows = np.split(t, np.cumsum(counts)[:-1])
    return np.array([rhythm(r, span) + rhythm(r[r >= last0] - last0, LAST_S) for r in rows], dtype=np.float64).reshape(-1, 14)


def _ecg_widths(t: np.ndarray, w: np.ndarray, counts: np.ndarray, span: float, K: dict | None) -> np.ndarray:
    """[R, 2]: ``_widths`` of each ECG row."""
    if K:
        return K["widths_rows"](t, w, counts, span, LAST_S)
    cut = np.cumsum(counts)[:-1]
    return np.array([_widths(a, b, span) for a, b in zip(np.split(t, cut), np.split(w, cut))], dtype=np.float64).reshape(-1, 2)


BLOCK = {s: len(QUALITY) + 2 * len(RHYTHM) + len(ECG_EXTRA if s.startswith("ECG") else PULSE_EXTRA) for s in SOURCES}
OFFSET = np.cumsum([0] + [BLOCK[s] for s in SOURCES])  # first column of each source's block; consensus after the last


def _extract_chunk(windows: np.ndarray, masks: np.ndarray, fs_hz: int, K: dict | None) -> np.ndarray:
    """``extract_batch`` of at most ``CHUNK`` windows (masks already boolean); ``K``: the compiled stages or None."""
    if len(windows) == 0:
        return np.empty((0, N_FEATURES))
    B, _, n = windows.shape
    raw = windows[:, :4]
    filled, nan_frac = fill_nan(raw.reshape(B * 4, n))
    filled, nan_frac = filled.reshape(B, 4, n), nan_frac.reshape(B, 4)
    present = masks[:, :4] & (nan_frac < 1.0)
    quality = _quality_batch(raw, nan_frac, fs_hz)
    span = n / fs_hz
    out = np.full((B, N_FEATURES), np.nan)
    whole = np.full((B, 4, len(RHYTHM)), np.nan)  # each present source's whole-window rhythm, for the consensus
    leads: dict[tuple[int, int], np.ndarray] = {}
    eb, ei = np.nonzero(present[:, :2])  # (window, source) rows to compute; filtering is per row
    if len(eb):
        fe = filled[eb, ei]
        be = filtered(fe, "ecg", fs_hz)
        if K:
            t, w, counts = ecg_beats_flat(be, fs_hz)
        else:
            found = ecg_peaks_rows(be, fs_hz)
            (t, counts), (w, _) = _flat([a for a, _ in found]), _flat([b for _, b in found])
        rh = _beat_stats(t, counts, span, K)
        spectral = _ecg_spectral_rows(fe, fs_hz)
        block = np.concatenate([quality[eb, ei], rh, spectral, _ecg_widths(t, w, counts, span, K),
                                _morphology_rows(fe, be, fs_hz)], axis=1)
        out[eb[:, None], OFFSET[ei][:, None] + np.arange(block.shape[1])] = block
        whole[eb, ei] = rh[:, : len(RHYTHM)]
        both = present[eb, 0] & present[eb, 1]
        if both.any():
            rows = np.split(t, np.cumsum(counts)[:-1])
            leads = {(int(b), int(i)): rows[r] for r, (b, i) in enumerate(zip(eb, ei)) if both[r]}
    pb, pi = np.nonzero(present[:, 2:])
    if len(pb):
        pi = pi + 2
        fp = filled[pb, pi]
        bpp = filtered(fp, "pulse", fs_hz)
        floors = np.where(pi == 2, 5.0, 1e-3)
        if K:
            t, counts = pulse_beats_flat(bpp, fs_hz, floors)
        else:
            t, counts = _flat(pulse_peaks_rows(bpp, fs_hz, floors))
        rh = _beat_stats(t, counts, span, K)
        block = np.concatenate([quality[pb, pi], rh, _pulse_rows(fp, bpp, fs_hz)], axis=1)
        out[pb[:, None], OFFSET[pi][:, None] + np.arange(block.shape[1])] = block
        whole[pb, pi] = rh[:, : len(RHYTHM)]
    out[:, OFFSET[-1] :] = _consensus(present, quality, whole)
    if leads:
        match = K["match_fraction"] if K else match_fraction
        col = OFFSET[-1] + CONSENSUS.index("ecg_agreement")
        for b in {b for b, _ in leads}:
            out[b, col] = match(leads[b, 0], leads[b, 1], 0.15)
    return out


PULSE_VOTE_MAX_CV = 0.3  # a pulse source whose beat intervals vary more than this is not a pulse to trust


def _votes(quality: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """[B, 4]: whether each source is good enough to vote in the consensus (absent sources: NaN quality, no vote).

    Every source: under 20 % NaN and under half its 1 s blocks flat. A pulse (ABP, PPG) must also beat
    regularly (RR coefficient of variation under ``PULSE_VOTE_MAX_CV``) when it has beats at all: a
    damped or moving PPG yields a few scattered "beats" (a rate of 20-60 bpm during a true tachycardia
    of 150), and the consensus takes the slowest fast rate every voter supports. A pulse with fewer than
    two beats (NaN coefficient) still votes: that is what a real pause looks like.
    """
    good = (quality[..., 0] < 0.2) & (quality[..., 1] < 0.5)
    regular = ~(whole[..., RHYTHM.index("rr_cv")] >= PULSE_VOTE_MAX_CV)
    regular[:, :2] = True
    return good & regular


def _consensus(present: np.ndarray, quality: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """[B, 7] consensus columns: over the voting sources, the pause all agree on, the slowest / fastest rates every
    voter supports and ECG rate minus pulse rate (NaN without voters); lead agreement (filled in later) and
    the number of voters."""
    votes = present & _votes(quality, whole)
    out = np.full((len(votes), len(CONSENSUS)), np.nan)
    with np.errstate(invalid="ignore"):
        col = {k: whole[..., j] for j, k in enumerate(RHYTHM)}
        lo = lambda v: np.where(votes, v, np.inf).min(-1)  # noqa: E731
        hi = lambda v: np.where(votes, v, -np.inf).max(-1)  # noqa: E731
        hr = col["hr_bpm"]

        def med2(a, b, va, vb):  # median_small of the voters among two values
            return np.where(va & vb, (a + b) / 2.0, np.where(va, a, b))

        ecg = med2(hr[:, 0], hr[:, 1], votes[:, 0], votes[:, 1])
        pul = med2(hr[:, 2], hr[:, 3], votes[:, 2], votes[:, 3])
        diff = np.where(votes[:, :2].any(-1) & votes[:, 2:].any(-1), ecg - pul, np.nan)
        cons = np.stack([lo(col["max_gap_s"]), hi(col["min_hr5_bpm"]), lo(col["max_hr17_bpm"]), lo(col["max_hr5_bpm"]), diff], -1)
    any_vote = votes.any(-1)
    out[any_vote, :5] = cons[any_vote]
    out[:, CONSENSUS.index("n_good_sources")] = votes.sum(-1)
    return out


def alarm_onehot(alarm_types) -> np.ndarray:
    """One column per alarm type (the alarm type is an input of every model)."""
    idx = np.array([ALARM_TYPES.index(a) for a in alarm_types])
    out = np.zeros((len(idx), len(ALARM_TYPES)))
    out[np.arange(len(idx)), idx] = 1.0
    return out
