"""Raw windows (250 Hz, NaN allowed) -> CNN input (125 Hz, robustly scaled, absent slots zeroed).

Per window and slot:

1. centre on the median of the finite samples and divide by the 1st-99th percentile range, floored per
   slot so that a flat line (asystole, lead-off) stays flat instead of being blown up to full scale:
   ECG 0.2 mV, ABP 10 mmHg, PPG and RESP 0.05 (arbitrary units);
2. NaN samples become 0 (the median), values are clipped to +-``CLIP``;
3. pairs of samples are averaged (250 -> 125 Hz, a two-tap anti-alias filter);
4. a slot that is absent (mask False) or has no finite sample is all zeros.

Besides the signal, each slot gets one amplitude feature, ``log(range / floor)`` (0 when absent), so a
model still sees how flat a flat line was. Each window is processed on its own, so batching never changes
a result.

>>> import numpy as np
>>> w = np.zeros((1, 5, 4000), np.float32); w[0, 0] = np.sin(np.arange(4000) / 10)
>>> m = np.array([[True, False, False, False, False]])
>>> x, amp, present = preprocess(w, m)
>>> x.shape, amp.shape, float(np.abs(x[0, 1:]).max()), present.tolist()
((1, 5, 2000), (1, 5), 0.0, [[True, False, False, False, False]])
"""

from __future__ import annotations

import numpy as np

from .data import FS_HZ, N_SLOTS
from .errors import InvalidFieldError

OUT_FS_HZ = 125
CLIP = 5.0
# minimum scale per slot (ECG1, ECG2 in mV; ABP in mmHg; PPG, RESP in arbitrary units)
STATS_STRIDE = 4
SCALE_FLOOR = np.array([0.2, 0.2, 10.0, 0.05, 0.05], dtype=np.float32)


def _robust_stats(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 1-99 percentile range and 'any finite' per (window, slot) of w [B, 5, n].

    Quantiles are nearest-rank on every ``STATS_STRIDE``-th sample (1,000 of a 16 s window): ten times
    cheaper than exact percentiles and, being the same function in training and serving, just as good.
    """
    s = w[:, :, ::STATS_STRIDE]
    finite = np.isfinite(s)
    any_finite = np.isfinite(w).any(axis=2)
    n = s.shape[2]
    ks = [int(round(q * (n - 1))) for q in (0.01, 0.5, 0.99)]
    flat = s.reshape(-1, n)
    lo = np.zeros(flat.shape[0], np.float32)
    med = np.zeros(flat.shape[0], np.float32)
    hi = np.zeros(flat.shape[0], np.float32)
    rows_ok = finite.reshape(-1, n).all(axis=1)
    if rows_ok.any():
        part = np.partition(flat[rows_ok], ks, axis=1)
        lo[rows_ok], med[rows_ok], hi[rows_ok] = part[:, ks[0]], part[:, ks[1]], part[:, ks[2]]
    for r in np.flatnonzero(~rows_ok):  # rows with NaN: rare, exact on their finite samples
        f = flat[r][np.isfinite(flat[r])]
        if f.size == 0:
            f = w.reshape(-1, w.shape[2])[r]
            f = f[np.isfinite(f)]
        if f.size:
            lo[r], med[r], hi[r] = np.percentile(f, [1.0, 50.0, 99.0])
    shape = s.shape[:2]
    return med.reshape(shape), (hi - lo).reshape(shape), any_finite


def preprocess(windows: np.ndarray, masks: np.ndarray, fs_hz: int = FS_HZ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean, scale and downsample a batch.

    Returns (x float32 [B, 5, n/2], amp float32 [B, 5], present bool [B, 5]) where ``present`` is the mask
    and-ed with "has a finite sample".
    """
    if fs_hz != FS_HZ:
        raise InvalidFieldError("fs_hz", f"must be {FS_HZ} for the CNN preprocessing", fs_hz)
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 3 or w.shape[1] != N_SLOTS:
        raise InvalidFieldError("windows", f"must have shape [batch, {N_SLOTS}, samples]", w.shape)
    if w.shape[2] % 2:
        raise InvalidFieldError("windows", "must have an even number of samples (downsampled by 2)", w.shape[2])
    m = np.asarray(masks, dtype=bool)
    centre, spread, any_finite = _robust_stats(w)
    present = m & any_finite
    floor = SCALE_FLOOR[None, :]
    scale = np.maximum(spread, floor)
    x = (w - centre[:, :, None]) / scale[:, :, None]
    x = np.nan_to_num(x, nan=0.0, posinf=CLIP, neginf=-CLIP)
    np.clip(x, -CLIP, CLIP, out=x)
    x = 0.5 * (x[:, :, 0::2] + x[:, :, 1::2])
    x *= present[:, :, None]
    amp = np.where(present, np.log(scale / floor), 0.0).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32), amp, present


def out_samples(window_s: float) -> int:
    """Samples per slot after preprocessing a window of ``window_s`` seconds."""
    return int(round(window_s * OUT_FS_HZ))
