"""Helpers of the incremental scorer's and the verdict lane's tests: batches of real windows, and the features a stream
of the same samples gives."""

import numpy as np

from models.data import list_records, load_dataset, sliding_windows
from models.incremental import IncrementalFeatures
from streams.scorer import WindowBatch

FS = 250


def first_records(data_dir, n: int = 3):
    """The first ``n`` records by name."""
    recs, _ = load_dataset(data_dir, sorted(i.name for i in list_records(data_dir))[:n])
    return recs


def batch(items):
    """WindowBatch of (patient, end_s, window, mask) items."""
    n = len(items)
    return WindowBatch([p for p, _, _, _ in items], np.array([e for _, e, _, _ in items], dtype=np.float64),
                       np.stack([w for _, _, w, _ in items]).astype(np.float32), np.stack([m for _, _, _, m in items]),
                       ["Ventricular_Tachycardia"] * n, np.zeros(n, dtype=bool), np.zeros(n), np.zeros(n))


def windows_of(rec, first_end_s, count):
    out = []
    for end_s, w in sliding_windows(rec, 16.0, 1.0):
        if end_s >= first_end_s and len(out) < count:
            out.append((end_s, w))
    return out


def stream_features(rec, start_s, end_s):
    """Features of the window ending at end_s of a bed whose stream begins at start_s."""
    x = rec.signals[:, int(start_s * FS) : int(end_s * FS)].astype(np.float32).astype(np.float64)
    x[~rec.mask] = np.nan
    inc = IncrementalFeatures(1)
    inc.push(x[None])
    return inc.features(rec.mask[None])[0]
