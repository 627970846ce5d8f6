"""The HTTP request body of ``POST /v1/score`` and the checks every request passes, HTTP or handle.

Windows travel either as nested JSON lists (``windows``; null for a missing sample) or, compactly, as
base64 of little-endian float32 (``windows_b64`` with ``shape``). Rules:
- windows: shape [batch, 5, samples], 1 <= batch <= max_request_windows, no infinite values, and every
  window has finite samples in at least one slot (NaN runs inside a slot are real data and allowed);
- masks: [batch, 5] booleans, or omitted (a slot is present when it has any finite sample);
- alarm_types: one CinC 2015 alarm type per window;
- deadline_ms: finite, > 0; ensemble: a name from ``GET /v1/ensembles`` or omitted (the policy chooses).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.data import FS_HZ, N_SLOTS
from models.errors import InvalidFieldError
from models.member import check_batch


class ServeInputError(InvalidFieldError):
    """An ``InvalidFieldError`` that survives Ray's pickling, so a handle caller gets the typed error back."""

    def __reduce__(self):
        return (type(self), (self.field, self.rule, self.value, self.options))


def as_serve_error(e: InvalidFieldError) -> ServeInputError:
    return e if isinstance(e, ServeInputError) else ServeInputError(e.field, e.rule, e.value, e.options)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    windows: Optional[list] = Field(None, description="[batch][5][samples] numbers (null = missing sample)")
    windows_b64: Optional[str] = Field(None, description="base64 of float32 little-endian samples, C order")
    shape: Optional[list[int]] = Field(None, description="[batch, 5, samples] of windows_b64")
    masks: Optional[list[list[bool]]] = Field(None, description="[batch][5] slot present")
    alarm_types: list[str] = Field(..., description="alarm type per window (models.data.ALARM_TYPES)")
    deadline_ms: Optional[float] = Field(None, description="answer within this many ms of arrival")
    ensemble: Optional[str] = Field(None, description="force this ensemble instead of the policy's choice")
    lane: str = Field("routine", description="'verdict' (a window answering a monitor alarm: ahead of routine work, "
                      "never below the floor) or 'routine'")
    floor: Optional[str] = Field(None, description="verdict lane: weakest plan row allowed ('auto': the most accurate on nested CV)")


def decode_windows(req: ScoreRequest) -> np.ndarray:
    if (req.windows is None) == (req.windows_b64 is None):
        raise InvalidFieldError("windows", "must be given exactly once, as windows or windows_b64", "both" if req.windows is not None else None)
    if req.windows is not None:
        try:
            arr = np.array(req.windows, dtype=np.float32)  # None -> nan
        except (ValueError, TypeError) as e:
            raise InvalidFieldError("windows", f"must be a rectangular [batch, {N_SLOTS}, samples] array of numbers", str(e)[:80]) from e
        return arr
    if not req.shape or len(req.shape) != 3 or any(s < 1 for s in req.shape):
        raise InvalidFieldError("shape", f"must be [batch, {N_SLOTS}, samples] with positive sizes", req.shape)
    try:
        raw = base64.b64decode(req.windows_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidFieldError("windows_b64", "must be valid base64", str(e)[:80]) from e
    n = int(np.prod(req.shape))
    if len(raw) != 4 * n:
        raise InvalidFieldError("windows_b64", f"must hold {n} float32 values for shape {req.shape}", len(raw) // 4)
    return np.frombuffer(raw, dtype="<f4").reshape(req.shape).astype(np.float32)


def encode_windows(windows: np.ndarray) -> dict:
    """The compact JSON form of a batch of windows (for clients)."""
    w = np.ascontiguousarray(windows, dtype="<f4")
    return {"windows_b64": base64.b64encode(w.tobytes()).decode("ascii"), "shape": list(w.shape)}


def check_deadline(deadline_ms) -> float:
    if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, (int, float)) or not math.isfinite(deadline_ms) or deadline_ms <= 0:
        raise InvalidFieldError("deadline_ms", "must be a finite number of milliseconds > 0", deadline_ms)
    return float(deadline_ms)


def check_request(windows, masks, alarm_types, max_request_windows: int, window_s: float | None = None):
    """Validate one request batch; returns (windows float32, masks bool, alarm_types list)."""
    if not isinstance(windows, np.ndarray) or windows.ndim != 3 or windows.shape[1] != N_SLOTS:
        raise InvalidFieldError("windows", f"must have shape [batch, {N_SLOTS}, samples]", getattr(windows, "shape", type(windows).__name__))
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    b = windows.shape[0]
    if not 1 <= b <= max_request_windows:
        raise InvalidFieldError("windows", f"must hold 1..{max_request_windows} windows", b)
    if window_s is not None and windows.shape[2] != int(round(window_s * FS_HZ)):
        raise InvalidFieldError("windows", f"must have {int(round(window_s * FS_HZ))} samples ({window_s} s at {FS_HZ} Hz)", windows.shape[2])
    if np.isinf(windows).any():
        raise InvalidFieldError("windows", "must not contain infinite values", f"{int(np.isinf(windows).sum())} infinite samples")
    finite = np.isfinite(windows)
    empty = np.flatnonzero(~finite.any(axis=(1, 2)))
    if len(empty):
        raise InvalidFieldError(f"windows[{empty[0]}]", "must contain finite samples in at least one slot (all NaN)", f"{len(empty)} empty windows")
    if masks is None:
        masks = finite.any(axis=2)
    masks = np.asarray(masks)
    if masks.shape != (b, N_SLOTS) or masks.dtype != bool:
        raise InvalidFieldError("masks", f"must be booleans of shape [{b}, {N_SLOTS}]", f"{masks.dtype} {masks.shape}")
    alarm_types = list(alarm_types) if alarm_types is not None else []
    check_batch(windows, masks, alarm_types)
    return windows, masks, alarm_types
