"""Compiled per-sample kernels of ``models.incremental``: each row's samples filtered, turned into the detection
signal and searched for beat candidates once, the per-second summaries written at the end of each second, and a
window's beats gathered from the candidates (numba, ``nogil``, cached on disk like ``models.beat_kernels``).

Ring buffers (the detection signal ``hist``, the candidates ``bt``/``bh``/``bw``) have power-of-two lengths and are
indexed by masking: integer division per sample was the kernel's largest cost.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidFieldError

_KERNELS: dict | None = None


def _advance(x, rows, n, z, sos, zi_unit, last, have, prev, box, hist, acc, blk_sig, filled, q, rng, mom, top,
             bt, bh, bw, bn, fs, ecg, D, L, prom_len):
    """Feed chunk ``x`` [k, m] to state rows ``rows``: filter, detection signal, candidates decided D samples late,
    and at the end of each second its summaries into the per-second rings (slot = second index % ring length)."""
    H = hist.shape[1]
    cap = bt.shape[1]
    S = sos.shape[0]
    nb = q.shape[1]
    kt = top.shape[2]
    look = max(D, prom_len)
    hm = H - 1  # H is a power of two: ring indices by masking, not division (the per-sample cost)
    for a in range(rows.shape[0]):
        r = rows[a]
        i = n[r]
        p = i % fs
        slot = (i // fs) % nb
        li = i % L
        for j in range(x.shape[1]):
            v = x[a, j]
            if p == 0:  # NaN count, min, max, samples at min, at max, band-passed min, max, finite sum
                acc[r, 0] = 0.0
                acc[r, 1] = np.inf
                acc[r, 2] = -np.inf
                acc[r, 3] = 0.0
                acc[r, 4] = 0.0
                acc[r, 5] = np.inf
                acc[r, 6] = -np.inf
                acc[r, 7] = 0.0
            if math.isfinite(v):
                if not have[r]:
                    have[r] = True
                    for s in range(S):
                        z[r, s, 0] = zi_unit[s, 0] * v
                        z[r, s, 1] = zi_unit[s, 1] * v
                last[r] = v
                f = v
                if v < acc[r, 1]:
                    acc[r, 1] = v
                    acc[r, 3] = 1.0
                elif v == acc[r, 1]:
                    acc[r, 3] += 1.0
                if v > acc[r, 2]:
                    acc[r, 2] = v
                    acc[r, 4] = 1.0
                elif v == acc[r, 2]:
                    acc[r, 4] += 1.0
                acc[r, 7] += v
            else:
                f = last[r] if have[r] else 0.0
                acc[r, 0] += 1.0
            y = f
            for s in range(S):
                out = sos[s, 0] * y + z[r, s, 0]
                z[r, s, 0] = sos[s, 1] * y - sos[s, 4] * out + z[r, s, 1]
                z[r, s, 1] = sos[s, 2] * y - sos[s, 5] * out
                y = out
            acc[r, 5] = min(acc[r, 5], y)
            acc[r, 6] = max(acc[r, 6], y)
            if ecg:
                filled[r, slot, p] = f
                d = y - prev[r]
                prev[r] = y
                if li == 0:  # the running sum restarts exactly every L samples: no drift
                    box[r, 0] = d * d
                    sig = 0.0
                    for u in range(L):
                        sig += box[r, u]
                    box[r, L] = sig
                else:
                    box[r, L] += d * d - box[r, li]
                    box[r, li] = d * d
                sig = box[r, L] / L
                li += 1
                if li == L:
                    li = 0
                blk_sig[r, p] = sig
            else:
                sig = y
            hist[r, i & hm] = sig
            if p == fs - 1:
                _close_second(r, slot, acc, blk_sig, filled, q, rng, mom, top, fs, ecg, kt)
                p = 0
                slot += 1
                if slot == nb:
                    slot = 0
            else:
                p += 1
            c = i - D
            if c >= look:
                h = hist[r, c & hm]
                if h > hist[r, (c - 1) & hm] and h >= hist[r, (c + 1) & hm] and _is_peak(hist[r], c, h, D, i):
                    k = bn[r] & (cap - 1)
                    bt[r, k] = c
                    bh[r, k], bw[r, k] = _measure(hist[r], c, h, i, ecg, prom_len)
                    bn[r] += 1
            i += 1
        n[r] = i


def _close_second(r, slot, acc, blk_sig, filled, q, rng, mom, top, fs, ecg, kt):
    """The per-second summaries of row r's second just completed."""
    nnan = acc[r, 0]
    q[r, slot, 0] = nnan
    if nnan < fs:
        q[r, slot, 1] = acc[r, 1]
        q[r, slot, 2] = acc[r, 2]
    else:
        q[r, slot, 1] = np.nan
        q[r, slot, 2] = np.nan
    q[r, slot, 3] = acc[r, 3]
    q[r, slot, 4] = acc[r, 4]
    rng[r, slot] = acc[r, 6] - acc[r, 5]
    if not ecg:
        mom[r, slot, 0] = acc[r, 7]
        return
    m = 0.0
    for u in range(fs):
        m += filled[r, slot, u]
    m /= fs
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for u in range(fs):
        e = filled[r, slot, u] - m
        e2 = e * e
        m2 += e2
        m3 += e2 * e
        m4 += e2 * e2
    mom[r, slot, 0] = m
    mom[r, slot, 1] = m2
    mom[r, slot, 2] = m3
    mom[r, slot, 3] = m4
    part = np.partition(blk_sig[r], fs - kt)
    for u in range(kt):
        top[r, slot, u] = part[fs - kt + u]


def _is_peak(hs, c, h, D, right_end):
    """Whether sample c (value h) is above the D samples before it and not below those after it up to right_end."""
    hm = hs.shape[0] - 1
    for q in range(1, D + 1):  # both sides at once, nearest first: a ripple on a slope fails within a few samples
        if hs[(c - q) & hm] >= h or (c + q <= right_end and hs[(c + q) & hm] > h):
            return False
    return True


def _measure(hs, c, h, right_end, ecg, prom_len):
    """ECG: (height, width in samples at half height, right side cut at right_end); pulse: (prominence, height)."""
    H = hs.shape[0]
    hm = H - 1
    if not ecg:
        lo = h
        for q in range(1, prom_len + 1):
            lo = min(lo, hs[(c - q) & hm])
        return h - lo, h
    half = 0.5 * h
    left = float(c)
    limit = max(c - (H - (right_end - c) - 1), 0)
    q = c - 1
    while q >= limit and hs[q & hm] > half:
        q -= 1
    if q >= limit:
        lo_v, hi_v = hs[q & hm], hs[(q + 1) & hm]
        left = q + (half - lo_v) / (hi_v - lo_v) if hi_v != lo_v else float(q + 1)
    else:
        left = float(limit)
    q = c + 1
    while q <= right_end and hs[q & hm] > half:
        q += 1
    if q <= right_end:
        hi_v, lo_v = hs[(q - 1) & hm], hs[q & hm]
        right = (q - 1) + (hi_v - half) / (hi_v - lo_v) if hi_v != lo_v else float(q - 1)
    else:
        right = float(right_end)
    return h, right - left


def _window_beats(rows, n, N, hist, bt, bh, bw, bn, thr, fs, ecg, D, prom_len):
    """Beat times (s from the window start), widths (s) and count per row of the windows ending at ``n[rows]``:
    decided candidates at least ``thr`` (height or prominence), then the newest D samples' candidates judged on
    the samples there are. ``thr`` NaN: the row has no beats."""
    k = rows.shape[0]
    hm = hist.shape[1] - 1
    cm = bt.shape[1] - 1
    cap = bt.shape[1]
    t_out = np.empty(k * (cap + D))
    w_out = np.empty(k * (cap + D))
    counts = np.zeros(k, dtype=np.int64)
    m = 0
    look = max(D, prom_len)
    for a in range(k):
        r = rows[a]
        th = thr[a]
        if not th == th:
            continue
        end = n[r]
        start = end - N
        total = bn[r]
        first = max(0, total - cap)
        j = total
        while j > first and bt[r, (j - 1) & cm] >= start:
            j -= 1
        c0 = m
        for q in range(j, total):
            s = q & cm
            if bh[r, s] >= th:
                t_out[m] = (bt[r, s] - start) / fs
                w_out[m] = bw[r, s] / fs
                m += 1
        for c in range(max(end - D, start, look), end - 1):
            h = hist[r, c & hm]
            if h > hist[r, (c - 1) & hm] and h >= hist[r, (c + 1) & hm] and _is_peak(hist[r], c, h, D, end - 1):
                v, w = _measure(hist[r], c, h, end - 1, ecg, prom_len)
                if v >= th:
                    t_out[m] = (c - start) / fs
                    w_out[m] = w / fs
                    m += 1
        counts[a] = m - c0
    return t_out[:m], w_out[:m], counts


def kernels() -> dict:
    """The compiled per-sample kernels (numba, cached on disk); a typed error without numba."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from numba import njit
        except ImportError as e:  # pragma: no cover
            raise InvalidFieldError("engine", "incremental features need numba (pip install numba)", "incremental") from e
        jit = njit(cache=True, nogil=True)
        glob = globals()
        glob["_is_peak"] = jit(_is_peak)
        glob["_measure"] = jit(_measure)
        glob["_close_second"] = jit(_close_second)
        _KERNELS = {"advance": jit(glob["_advance"]), "window_beats": jit(glob["_window_beats"])}
    return _KERNELS
