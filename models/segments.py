"""Preprocessed alarm-adjacent windows of every record, computed once and reused by every CNN fit.

For each record, the windows ending at the alarm (t = 300 s) and at 1, 2, ... ``max_shift_s`` seconds before
it are cut from the raw record (``models.data.alarm_window``) and preprocessed exactly as a served
``CNNMember`` would preprocess them. Training samples a shift per window and epoch (window-shift
augmentation); out-of-fold predictions use shift 0, the window ending at the alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .data import ALARM_TYPES, Record, alarm_window
from .errors import InvalidFieldError
from .preprocess import preprocess


@dataclass
class SegmentCache:
    names: list[str]
    alarm_types: list[str]
    labels: np.ndarray  # int [R]
    type_idx: np.ndarray  # int [R]
    shifts_s: np.ndarray  # float [S]
    x: np.ndarray  # float32 [R, S, 5, n]
    amp: np.ndarray  # float32 [R, S, 5]
    present: np.ndarray  # bool [R, S, 5]
    window_s: float

    def __len__(self) -> int:
        return len(self.names)

    def take(self, idx: Sequence[int]) -> "SegmentCache":
        idx = np.asarray(idx, dtype=np.int64)
        return SegmentCache(
            [self.names[i] for i in idx], [self.alarm_types[i] for i in idx], self.labels[idx], self.type_idx[idx],
            self.shifts_s, self.x[idx], self.amp[idx], self.present[idx], self.window_s,
        )


def build_cache(records: Sequence[Record], window_s: float = 16.0, max_shift_s: float = 8.0, shift_step_s: float = 1.0,
                progress: bool = False) -> SegmentCache:
    """Cut and preprocess the windows ending 0, step, 2 step, ... max_shift_s before the alarm of each record."""
    if max_shift_s < 0 or shift_step_s <= 0:
        raise InvalidFieldError("max_shift_s/shift_step_s", "must be >= 0 and > 0", (max_shift_s, shift_step_s))
    missing = [r.name for r in records if r.label not in (0, 1)]
    if missing:
        raise InvalidFieldError("label", "must be 0 or 1 for every training record", missing[:5])
    shifts = np.arange(0.0, max_shift_s + 1e-9, shift_step_s)
    it = records
    if progress:
        from tqdm import tqdm

        it = tqdm(records, desc="preprocess", unit="rec")
    xs, amps, pres = [], [], []
    for r in it:
        w = np.stack([alarm_window(r, window_s, float(s)) for s in shifts])
        m = np.repeat(r.mask[None, :], len(shifts), axis=0)
        x, a, p = preprocess(w, m, r.fs_hz)
        xs.append(x)
        amps.append(a)
        pres.append(p)
    return SegmentCache(
        names=[r.name for r in records],
        alarm_types=[r.alarm_type for r in records],
        labels=np.array([int(r.label) for r in records], dtype=np.int64),
        type_idx=np.array([ALARM_TYPES.index(r.alarm_type) for r in records], dtype=np.int64),
        shifts_s=shifts,
        x=np.stack(xs),
        amp=np.stack(amps),
        present=np.stack(pres),
        window_s=window_s,
    )
