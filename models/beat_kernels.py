"""Compiled per-row stages of the beat features: peak search, QRS widths, rhythm statistics, lead agreement.

``models.beats`` is the reference: its peak search is ``scipy.signal.find_peaks`` / ``peak_widths`` and its
rhythm statistics are numpy calls, one Python call per (window, source) row. Those per-row calls, not the
arithmetic, were half the cost of a window's features (~43 us per ``find_peaks`` call, ~16 us per ``rhythm``).
Here the same algorithms run over all rows of a batch in one compiled call (numba, ``nogil``):

- local maxima (a plateau counts once, at its middle sample, rounded down), then the minimum height, then
  the minimum distance (highest peak first, neighbours closer than the distance dropped), then the minimum
  prominence (measured over the whole row), as ``find_peaks(x, height=, distance=, prominence=)`` orders them;
- the width at half prominence with linear interpolation between samples (``peak_widths(rel_height=0.5)``);
- the rhythm statistics of ``models.beats.rhythm`` with numpy's summation order (pairwise blocks of 8).

Peak positions are integers and come out identical; floats agree with the reference to the last bits
(``bench/features_equal.py`` measures it on every window of the development records). Two equal peak
heights closer than the distance may resolve to the other peak than scipy's unstable sort picks; real
signals give no such ties in the development windows.

``available()`` says whether numba is importable; ``models.features`` falls back to the reference without it.
"""

from __future__ import annotations

import math

import numpy as np

_COMPILED: dict | None = None


def _local_maxima(x, out):
    """Midpoints of the local maxima of ``x`` (plateaus once, middle rounded down) into ``out``; returns the count."""
    m = 0
    i = 1
    last = x.shape[0] - 1
    while i < last:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < last and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                out[m] = (i + ahead - 1) // 2
                m += 1
                i = ahead
        i += 1
    return m


def _bases(x, p):
    """(prominence, left base, right base) of the peak at ``p``, searched over the whole row."""
    top = x[p]
    i = p
    left_min = top
    left = p
    while i >= 0 and x[i] <= top:
        if x[i] < left_min:
            left_min = x[i]
            left = i
        i -= 1
    i = p
    right_min = top
    right = p
    n = x.shape[0]
    while i < n and x[i] <= top:
        if x[i] < right_min:
            right_min = x[i]
            right = i
        i += 1
    return top - max(left_min, right_min), left, right


def _half_width(x, p, prom, left, right):
    """Width (samples) of the peak at ``p`` at half its prominence, interpolated between samples."""
    h = x[p] - prom * 0.5
    i = p
    while left < i and h < x[i]:
        i -= 1
    lo = float(i)
    if x[i] < h and x[i + 1] != x[i]:
        lo += (h - x[i]) / (x[i + 1] - x[i])
    i = p
    while i < right and h < x[i]:
        i += 1
    hi = float(i)
    if x[i] < h and x[i - 1] != x[i]:
        hi -= (h - x[i]) / (x[i - 1] - x[i])
    return hi - lo


def _peaks_rows(X, hmin, pmin, distance, widths):
    """Peaks of each row of ``X`` [R, n]: (positions, half-prominence widths, count per row).

    ``hmin[r]`` / ``pmin[r]``: smallest height / prominence kept in row r (NaN: no condition); ``distance``: the
    smallest spacing in samples; ``widths``: whether to measure widths (zeros otherwise).
    """
    R, n = X.shape
    cand = np.empty(n // 2 + 1, dtype=np.int64)
    pos = np.empty(R * (n // 2 + 1), dtype=np.int64)
    wid = np.zeros(R * (n // 2 + 1))
    counts = np.zeros(R, dtype=np.int64)
    total = 0
    for r in range(R):
        x = X[r]
        m = _local_maxima(x, cand)
        k = 0
        if not math.isnan(hmin[r]):
            for j in range(m):
                if hmin[r] <= x[cand[j]]:
                    cand[k] = cand[j]
                    k += 1
            m = k
        if m > 1:
            prio = np.empty(m)
            for j in range(m):
                prio[j] = x[cand[j]]
            order = np.argsort(prio)
            keep = np.ones(m, dtype=np.bool_)
            for q in range(m - 1, -1, -1):
                j = order[q]
                if not keep[j]:
                    continue
                a = j - 1
                while a >= 0 and cand[j] - cand[a] < distance:
                    keep[a] = False
                    a -= 1
                a = j + 1
                while a < m and cand[a] - cand[j] < distance:
                    keep[a] = False
                    a += 1
            k = 0
            for j in range(m):
                if keep[j]:
                    cand[k] = cand[j]
                    k += 1
            m = k
        k = 0
        for j in range(m):
            p = cand[j]
            if math.isnan(pmin[r]) and not widths:
                pos[total + k] = p
                k += 1
                continue
            prom, left, right = _bases(x, p)
            if not math.isnan(pmin[r]) and not (pmin[r] <= prom):
                continue
            pos[total + k] = p
            if widths:
                wid[total + k] = _half_width(x, p, prom, left, right)
            k += 1
        counts[r] = k
        total += k
    return pos[:total], wid[:total], counts


def _block_sum(a, lo, hi):
    """numpy's sum of at most 128 contiguous float64 values: 8 running sums combined pairwise, then the rest."""
    n = hi - lo
    if n < 8:
        s = 0.0
        for i in range(lo, hi):
            s += a[i]
        return s
    r = np.empty(8)
    for j in range(8):
        r[j] = a[lo + j]
    i = lo + 8
    end = hi - n % 8
    while i < end:
        for j in range(8):
            r[j] += a[i + j]
        i += 8
    s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < hi:
        s += a[i]
        i += 1
    return s


def _np_sum(a, lo, hi):
    """``np.add.reduce`` of the contiguous float64 slice a[lo:hi] in numpy's order.

    numpy splits a slice longer than 128 at half its length (rounded down to a multiple of 8) and adds the two
    halves' sums; blocks of at most 128 go to ``_block_sum``. The tree is walked with an explicit stack
    (numba caches no recursive function): each entry is a range, and a finished range's sum waits on
    ``sums`` until its sibling's is there.
    """
    if hi - lo <= 128:
        return _block_sum(a, lo, hi)
    los = np.empty(64, dtype=np.int64)
    his = np.empty(64, dtype=np.int64)
    done = np.zeros(64, dtype=np.bool_)
    sums = np.empty(64)
    los[0], his[0] = lo, hi
    top = 0
    k = 0  # sums on the value stack
    while top >= 0:
        a_lo, a_hi = los[top], his[top]
        if a_hi - a_lo <= 128:
            sums[k] = _block_sum(a, a_lo, a_hi)
            k += 1
            top -= 1
        elif done[top]:  # both halves summed: left below right on the value stack
            sums[k - 2] = sums[k - 2] + sums[k - 1]
            k -= 1
            done[top] = False
            top -= 1
        else:
            done[top] = True
            n2 = (a_hi - a_lo) // 2
            n2 -= n2 % 8
            los[top + 1], his[top + 1] = a_lo + n2, a_hi  # right half on top of the left: the left is summed first
            los[top + 2], his[top + 2] = a_lo, a_lo + n2
            done[top + 1] = done[top + 2] = False
            top += 2
    return sums[0]


def _median_sorted(s, n):
    h = n // 2
    return s[h] if n % 2 else (s[h - 1] + s[h]) / 2.0


def _moving_extremes(rr, m, k):
    """(max, min) over the k-interval moving means of rr[:m] (kernel of k taps of 1/k, as ``np.convolve``)."""
    c = 1.0 / k
    big = -np.inf
    small = np.inf
    for i in range(m - k + 1):
        s = 0.0
        for j in range(k):
            s += rr[i + j] * c
        big = max(big, s)
        small = min(small, s)
    return big, small


def _rhythm_one(t, lo, hi, shift, span, out):
    """``models.beats.rhythm`` of the beat times t[lo:hi] - shift over ``span`` seconds, into ``out`` [7]."""
    n = hi - lo
    out[0] = n
    if n == 0:
        out[1:5] = 0.0
        out[5] = span
        out[6] = np.nan
        return
    edge = max(t[lo] - shift, span - (t[hi - 1] - shift))
    if n < 2:
        out[1:5] = 0.0
        out[5] = edge
        out[6] = np.nan
        return
    m = n - 1
    rr = np.empty(m)
    for i in range(m):
        rr[i] = (t[lo + i + 1] - shift) - (t[lo + i] - shift)
    gap = max(edge, rr.max())
    big4, small4 = _moving_extremes(rr, m, min(4, m))
    small16 = small4 if m <= 4 else _moving_extremes(rr, m, min(16, m))[1]
    mean = _np_sum(rr, 0, m) / m
    dev = np.empty(m)
    for i in range(m):
        d = rr[i] - mean
        dev[i] = d * d
    std = math.sqrt(_np_sum(dev, 0, m) / m)
    med = _median_sorted(np.sort(rr), m)
    out[1] = 60.0 / med
    out[2] = min(60.0 / big4, 60.0 / gap)
    out[3] = 60.0 / small16
    out[4] = 60.0 / small4
    out[5] = gap
    out[6] = std / mean


def _rhythm_rows(t, counts, span, last_s):
    """[R, 14]: ``rhythm`` of each row's beats over the whole window, then over its last ``last_s`` seconds.

    ``t``: every row's beat times (s) one row after another, ``counts[r]`` of them for row r.
    """
    R = counts.shape[0]
    out = np.empty((R, 14))
    lo = 0
    last0 = span - last_s
    for r in range(R):
        hi = lo + counts[r]
        _rhythm_one(t, lo, hi, 0.0, span, out[r, :7])
        first = lo
        while first < hi and t[first] < last0:
            first += 1
        _rhythm_one(t, first, hi, last0, last_s, out[r, 7:])
        lo = hi
    return out


def _widths_rows(t, w, counts, span, last_s):
    """[R, 2]: median QRS width (s) and the widest 4-beat run of the last ``last_s`` s over it, per row."""
    R = counts.shape[0]
    out = np.full((R, 2), np.nan)
    lo = 0
    for r in range(R):
        hi = lo + counts[r]
        n = hi - lo
        if n >= 2:
            med = _median_sorted(np.sort(w[lo:hi]), n)
            first = lo
            while first < hi and t[first] < span - last_s:
                first += 1
            k = hi - first
            run = med
            if k:
                run = _moving_extremes(w[first:hi], k, min(4, k))[0]
            out[r, 0] = med
            if med > 0:
                out[r, 1] = run / med
        lo = hi
    return out


def _match_fraction(a, b, tol):
    """``models.beats.match_fraction`` of two sorted beat-time arrays."""
    na, nb = a.shape[0], b.shape[0]
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    hits = 0
    for i in range(na):
        if nb > 1:
            j = np.searchsorted(b, a[i])
            j = min(max(j, 1), nb - 1)
        else:
            j = 0
        d = min(abs(b[j] - a[i]), abs(b[max(j - 1, 0)] - a[i]))
        if d <= tol:
            hits += 1
    return 2.0 * hits / (na + nb)


def available() -> bool:
    """Whether the compiled kernels can be used (numba importable)."""
    return kernels() is not None


def kernels() -> dict | None:
    """{name: compiled function} (compiled on first use, cached on disk by numba), or None without numba."""
    global _COMPILED
    if _COMPILED is None:
        try:
            from numba import njit
        except ImportError:
            _COMPILED = {}
            return None
        jit = njit(cache=True, nogil=True)
        glob = globals()
        for name in ("_local_maxima", "_bases", "_half_width", "_block_sum", "_np_sum", "_median_sorted", "_moving_extremes", "_rhythm_one"):
            glob[name] = jit(glob[name])
        _COMPILED = {name: jit(glob["_" + name]) for name in ("peaks_rows", "rhythm_rows", "widths_rows", "match_fraction")}
    return _COMPILED or None
