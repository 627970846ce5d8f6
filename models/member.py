"""The one interface every scoring model in the project implements (feature models, CNNs, supernet subnets).

A member scores a batch of raw windows:

    windows      float32 [B, 5, n]  raw samples at 250 Hz in slots ECG1, ECG2, ABP, PPG, RESP (NaN allowed)
    masks        bool    [B, 5]     slot present
    alarm_types  sequence of B alarm type names (models.data.ALARM_TYPES)

and returns float64 [B] of P(true alarm / life-threatening arrhythmia). Members never keep per-request
state, so one instance serves concurrent requests. Anything that calls a member checks the contract with
``check_output``.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .data import ALARM_TYPES, N_SLOTS
from .errors import InvalidFieldError


@runtime_checkable
class Member(Protocol):
    name: str
    kind: str  # "features" | "cnn" | "subnet"

    def predict_proba(self, windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray: ...


def check_batch(windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str], n_samples: int | None = None) -> None:
    """Validate a batch at a boundary; raises InvalidFieldError naming the field."""
    if not isinstance(windows, np.ndarray) or windows.ndim != 3 or windows.shape[1] != N_SLOTS:
        shape = getattr(windows, "shape", type(windows).__name__)
        raise InvalidFieldError("windows", f"must be an array of shape [batch, {N_SLOTS}, samples]", shape)
    if n_samples is not None and windows.shape[2] != n_samples:
        raise InvalidFieldError("windows", f"must have {n_samples} samples per window", windows.shape[2])
    if masks.shape != windows.shape[:2]:
        raise InvalidFieldError("masks", f"must have shape {windows.shape[:2]}", masks.shape)
    if len(alarm_types) != windows.shape[0]:
        raise InvalidFieldError("alarm_types", f"must have one entry per window ({windows.shape[0]})", len(alarm_types))
    for a in alarm_types:
        if a not in ALARM_TYPES:
            raise InvalidFieldError("alarm_types", "must be a CinC 2015 alarm type", a, ALARM_TYPES)


def check_output(name: str, probs, batch_size: int) -> np.ndarray:
    """Contract check on what a member returns: one finite probability in [0, 1] per window."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.shape[0] != batch_size:
        raise RuntimeError(f"member {name} returned {p.shape[0]} probabilities for a batch of {batch_size}")
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0.0 or p.max(initial=0.0) > 1.0:
        raise RuntimeError(f"member {name} returned probabilities outside [0, 1] or non-finite: {p[:5]}")
    return p
