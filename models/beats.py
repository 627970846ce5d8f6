"""Beat and pulse detection on raw windows, vectorised over channels.

ECG: band-pass 5-20 Hz, squared slope, 120 ms moving integration, peaks at least 200 ms apart (HR <= 300
beats per minute) above an adaptive height. Pulse (ABP in mmHg, PPG in arbitrary units): band-pass 0.5-8 Hz,
peaks at least 250 ms apart with a prominence relative to the window's pulse amplitude.

Both return beat times in seconds from the window start. NaN runs are filled by linear interpolation
before filtering (the fraction is reported separately as a quality feature); a flat or absent channel
yields no beats. The ``*_rows`` functions take many rows at once: percentiles and slopes run on the whole
stack, only the peak search is per row, and each row's result does not depend on the others.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

try:  # the compiled kernel behind scipy.signal.sosfilt; the public function is the fallback
    from scipy.signal._sosfilt import _sosfilt
except ImportError:  # pragma: no cover
    _sosfilt = None

ECG_FLAT_MV = 0.05  # a band-passed ECG whose robust range is below this has no detectable QRS


@lru_cache(maxsize=64)
def _percentile_plan(n: int, qs: tuple) -> tuple:
    pos = np.asarray(qs, dtype=np.float64) / 100.0 * (n - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    return lo.tolist(), hi.tolist(), (pos - lo).tolist(), np.unique(np.concatenate([lo, hi])).tolist()


def order_stats(x: np.ndarray, ks) -> dict[int, np.ndarray]:
    """{k: k-th smallest value (0-based) along the last axis} for sorted indices ``ks``; NaN-free rows.

    One copy, then single-index partitions in place, each on the part above the previous one (a pair of
    neighbouring indices costs one: the neighbour is the max below or the min above). Several times
    faster than ``np.partition`` with several indices on 2-D input; order statistics are exact.
    """
    n = x.shape[-1]
    p = np.array(x, dtype=np.float64)
    got: dict[int, np.ndarray] = {}
    start = 0  # p[..., :start] holds the `start` smallest values
    for k in ks:
        if k in got:
            continue
        if k + 1 in ks and k < n // 2:
            p[..., start:].partition(k + 1 - start, axis=-1)
            got[k], got[k + 1] = p[..., start : k + 1].max(axis=-1), p[..., k + 1].copy()
            start = k + 2
        else:
            p[..., start:].partition(k - start, axis=-1)
            got[k] = p[..., k].copy()
            if k + 1 in ks:
                got[k + 1] = p[..., k + 1 :].min(axis=-1)
            start = k + 1
    return got


def percentiles_rows(x: np.ndarray, qs) -> np.ndarray:
    """``np.percentile(x, qs, axis=-1)`` (linear method, same values) as [..., len(qs)], without its overhead.

    >>> x = np.array([[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0]])
    >>> bool(np.array_equal(percentiles_rows(x, [1, 50, 99]), np.percentile(x, [1, 50, 99], axis=-1).T))
    True
    """
    lo, hi, t, kth = _percentile_plan(x.shape[-1], tuple(qs))
    got = order_stats(x, kth)
    cols = []
    for a, b, f in zip((got[k] for k in lo), (got[k] for k in hi), t):  # numpy's formula, one q at a time
        d = b - a
        cols.append(b - d * (1 - f) if f >= 0.5 else a + d * f)
    return np.stack(cols, axis=-1)


def median_rows(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=-1)`` (same values: the middle order statistic, or the mean of the middle two)."""
    n = x.shape[-1]
    h = n // 2
    if n % 2:
        return order_stats(x, [h])[h]
    got = order_stats(x, [h - 1, h])
    return np.stack([got[h - 1], got[h]], axis=-1).mean(axis=-1)


def median_small(values) -> float:
    """``np.median`` of a short 1-D sequence (same value), without its per-call overhead."""
    s = sorted(values)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2.0


@lru_cache(maxsize=32)
def box(k: int) -> np.ndarray:
    """Moving-average kernel of ``k`` taps (read-only, shared)."""
    kern = np.full(k, 1.0 / k)
    kern.flags.writeable = False
    return kern


@lru_cache(maxsize=8)
def _sos(kind: str, fs_hz: int):
    if kind == "ecg":
        return signal.butter(2, [5.0, 20.0], btype="bandpass", fs=fs_hz, output="sos")
    if kind == "pulse":
        return signal.butter(2, [0.5, 8.0], btype="bandpass", fs=fs_hz, output="sos")
    raise ValueError(kind)


def fill_nan(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with NaN runs filled by linear interpolation (edges held); returns (filled, NaN fraction per row).

    An all-NaN row becomes zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    frac = bad.mean(axis=-1)
    if not bad.any():
        return x, frac
    out = x.copy()
    idx = np.arange(x.shape[-1])
    for r in np.flatnonzero(bad.any(axis=-1)):
        good = ~bad[r]
        out[r] = np.interp(idx, idx[good], x[r, good]) if good.any() else 0.0
    return out, frac


@lru_cache(maxsize=8)
def _sosfiltfilt_plan(kind: str, fs_hz: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(sos, steady state per unit step [sections, 2], odd padding length) as ``sosfiltfilt`` builds them."""
    sos = _sos(kind, fs_hz)
    ntaps = 2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum())
    return sos, signal.sosfilt_zi(sos), int(3 * ntaps)


def _sosfilt_rows(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt(sos, x, axis=-1, zi=zi)[0]`` for 2-D ``x`` (overwritten), ``zi`` [rows, sections, 2].

    Calls scipy's compiled kernel directly when it is importable (skips the wrapper's checks and copies).
    """
    if _sosfilt is None:
        return signal.sosfilt(sos, x, axis=-1, zi=np.moveaxis(zi, 1, 0))[0]
    x = np.require(x, dtype=np.float64, requirements="C")  # filtered in place: callers pass a fresh array
    _sosfilt(sos, x, np.ascontiguousarray(zi))
    return x


def filtered(x: np.ndarray, kind: str, fs_hz: int) -> np.ndarray:
    """Zero-phase band-pass along the last axis (rows must be NaN-free).

    ``scipy.signal.sosfiltfilt(sos, x, axis=-1)`` step by step (odd extension, forward and backward
    ``sosfilt`` from steady state), same values, with the steady state computed once per filter.
    """
    sos, zi, edge = _sosfiltfilt_plan(kind, fs_hz)
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] <= edge:
        raise ValueError(f"The length of the input vector x must be greater than padlen, which is {edge}.")
    rows = x.reshape(-1, x.shape[-1])
    left, right = 2 * rows[:, :1] - rows[:, edge:0:-1], 2 * rows[:, -1:] - rows[:, -2 : -(edge + 2) : -1]  # odd extension
    ext = np.concatenate((left, rows, right), axis=-1)
    y = _sosfilt_rows(sos, ext, zi[None] * ext[:, None, :1])
    y = _sosfilt_rows(sos, np.ascontiguousarray(y[:, ::-1]), zi[None] * y[:, None, -1:])
    return y[:, ::-1][:, edge:-edge].reshape(x.shape)


def _ecg_integ(bp: np.ndarray, fs_hz: int):
    """(rows of ``bp`` with a detectable QRS, their 120 ms integrated squared slope, the least peak height per row).

    A row whose 1-99 percentile range is under ``ECG_FLAT_MV`` has no QRS; the height is 20 % of the 99th
    percentile of the row's integrated slope.
    """
    lohi = percentiles_rows(bp, [1, 99])
    ok = np.flatnonzero(~(lohi[:, 1] - lohi[:, 0] < ECG_FLAT_MV))
    if not len(ok):
        return ok, np.empty((0, bp.shape[-1])), np.empty(0)
    x = bp if len(ok) == len(bp) else bp[ok]
    slope = np.empty(x.shape)  # np.diff(x, prepend=x[:, :1]) ** 2, without its temporaries
    slope[:, 0] = 0.0
    np.subtract(x[:, 1:], x[:, :-1], out=slope[:, 1:])
    np.square(slope, out=slope)
    kern = box(max(1, int(0.12 * fs_hz)))
    integ = np.stack([np.convolve(s, kern, mode="same") for s in slope])
    return ok, integ, 0.2 * percentiles_rows(integ, [99])[:, 0]


def ecg_peaks_rows(bp: np.ndarray, fs_hz: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(QRS times (s), QRS widths (s)) of each band-passed ECG row of ``bp`` [R, n]; see ``ecg_peaks``."""
    ok, integ, heights = _ecg_integ(bp, fs_hz)
    out = [(np.empty(0), np.empty(0))] * len(bp)
    for r, sig, h in zip(ok, integ, heights):
        peaks, _ = signal.find_peaks(sig, height=h, distance=int(0.2 * fs_hz))
        w = signal.peak_widths(sig, peaks, rel_height=0.5)[0] if len(peaks) else np.empty(0)
        out[r] = (peaks / fs_hz, w / fs_hz)
    return out


def ecg_beats_flat(bp: np.ndarray, fs_hz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ecg_peaks_rows`` in one compiled call: (QRS times (s), QRS widths (s), count per row), rows one after another.

    Needs ``models.beat_kernels.available()``.
    """
    from .beat_kernels import kernels

    ok, integ, heights = _ecg_integ(bp, fs_hz)
    counts = np.zeros(len(bp), dtype=np.int64)
    if not len(ok):
        return np.empty(0), np.empty(0), counts
    pos, wid, counts[ok] = kernels()["peaks_rows"](integ, heights, np.full(len(ok), np.nan), int(0.2 * fs_hz), True)
    return pos / fs_hz, wid / fs_hz, counts


def ecg_peaks(bp: np.ndarray, fs_hz: int, widths: bool = False):
    """QRS times (s) in one band-passed ECG row; with ``widths``, also each QRS's width (s).

    The width is the time the integrated slope stays above half its peak: wide ventricular beats (VT)
    give larger widths than narrow supraventricular ones.
    """
    t, w = ecg_peaks_rows(np.asarray(bp)[None], fs_hz)[0]
    return (t, w) if widths else t


def pulse_peaks_rows(bp: np.ndarray, fs_hz: int, floors) -> list[np.ndarray]:
    """Pulse times (s) of each band-passed ABP/PPG row of ``bp`` [R, n]; ``floors[r]`` is the smallest prominence
    accepted in row r (a row whose 2-98 percentile range is below it has no pulse)."""
    lohi = percentiles_rows(bp, [2, 98])
    out = []
    for x, (lo, hi), floor in zip(bp, lohi, floors):
        amp = hi - lo
        if amp < floor:
            out.append(np.empty(0))
            continue
        peaks, _ = signal.find_peaks(x, prominence=max(0.3 * amp, floor), distance=int(0.25 * fs_hz))
        out.append(peaks / fs_hz)
    return out


def pulse_beats_flat(bp: np.ndarray, fs_hz: int, floors) -> tuple[np.ndarray, np.ndarray]:
    """``pulse_peaks_rows`` in one compiled call: (pulse times (s), count per row), rows one after another."""
    from .beat_kernels import kernels

    lohi = percentiles_rows(bp, [2, 98])
    amp = lohi[:, 1] - lohi[:, 0]
    floors = np.asarray(floors, dtype=np.float64)
    none = np.where(amp < floors, np.inf, np.nan)  # a height no sample reaches: the row has no pulse
    pos, _, counts = kernels()["peaks_rows"](np.ascontiguousarray(bp), none, np.maximum(0.3 * amp, floors),
                                             int(0.25 * fs_hz), False)
    return pos / fs_hz, counts


def rhythm(t: np.ndarray, span_s: float) -> list[float]:
    """[n_beats, hr_bpm, min_hr5_bpm, max_hr17_bpm, max_hr5_bpm, max_gap_s, rr_cv] of beat times ``t`` (s).

    hr is 60 / median RR; min_hr5 the slowest 4-interval mean rate (or the longest pause, window edges
    included, if slower); max_hr17 / max_hr5 the fastest 16- / 4-interval mean rates; rr_cv = std / mean RR.
    """
    n = len(t)
    if n == 0:
        return [0, 0.0, 0.0, 0.0, 0.0, float(span_s), np.nan]
    edge_gap = max(float(t[0]), float(span_s - t[-1]))  # np.diff over [0, *t, span_s], piece by piece
    if n < 2:
        return [n, 0.0, 0.0, 0.0, 0.0, edge_gap, np.nan]
    rr = t[1:] - t[:-1]
    rr_list = rr.tolist()
    max_gap = max(edge_gap, max(rr_list))
    m = n - 1
    means4 = np.convolve(rr, box(min(4, m)), mode="valid").tolist()
    means16 = means4 if m <= 4 else np.convolve(rr, box(min(16, m)), mode="valid").tolist()
    mean = np.add.reduce(rr) / m  # rr.mean() and rr.std() step by step, same operations
    dev = rr - mean
    std = np.sqrt(np.add.reduce(dev * dev) / m)
    slowest = min(60.0 / max(means4), 60.0 / max_gap)  # a long pause is the slowest rhythm there is
    return [n, 60.0 / median_small(rr_list), slowest, 60.0 / min(means16), 60.0 / min(means4), max_gap,
            float(std / mean)]


def match_fraction(a: np.ndarray, b: np.ndarray, tol_s: float = 0.15) -> float:
    """F1-style agreement of two beat-time lists (1.0 = every beat seen in both)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    if len(a) == 0 or len(b) == 0:
        return 0.0
    j = np.clip(np.searchsorted(b, a), 1, len(b) - 1) if len(b) > 1 else np.zeros(len(a), dtype=int)
    d = np.minimum(np.abs(b[j] - a), np.abs(b[np.maximum(j - 1, 0)] - a))
    hits = int((d <= tol_s).sum())
    return 2.0 * hits / (len(a) + len(b))
