"""Gates: the three-way decision each rung of a cascade makes on its probability.

    ICK0  p <= lo          "I confidently know: low"   -> stop, the window is scored negative
    IDK   lo < p < hi      "I don't know"              -> escalate to the next, costlier rung of the stage
    ICK1  p >= hi          "I confidently know: high"  -> go on to the next stage (final positive at the last)

The last rung of a stage has no IDK band: its decision is forced by its own decision threshold
(``Gate.final(t)``: ICK1 when p >= t, else ICK0).

>>> g = Gate(0.2, 0.7)
>>> g.decide([0.1, 0.5, 0.9]).tolist()
[0, 1, 2]
>>> Gate.final(0.4).decide([0.39, 0.4]).tolist()
[0, 2]
>>> Gate(0.8, 0.3)
Traceback (most recent call last):
...
models.errors.InvalidFieldError: thresholds_[lo] must be <= hi (the ICK0 cut-off may not exceed the ICK1 cut-off, hi=0.3), got 0.8
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.errors import InvalidFieldError

ICK0, IDK, ICK1 = 0, 1, 2
DECISIONS = ("ICK0", "IDK", "ICK1")


def check_probability(field: str, value) -> float:
    """A cut-off must be a finite number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InvalidFieldError(field, "must be a number in [0, 1]", value)
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise InvalidFieldError(field, "must be in [0, 1]", value)
    return v


@dataclass(frozen=True)
class Gate:
    """ICK0 cut-off ``lo`` and ICK1 cut-off ``hi`` of one rung (0 <= lo <= hi <= 1)."""

    lo: float
    hi: float
    forced: bool = False  # the last rung of a stage: ICK1 iff p >= hi, never IDK

    def __post_init__(self):
        lo = check_probability("thresholds_[lo]", self.lo)
        hi = check_probability("thresholds_[hi]", self.hi)
        if lo > hi:
            raise InvalidFieldError("thresholds_[lo]", f"must be <= hi (the ICK0 cut-off may not exceed the ICK1 cut-off, hi={hi})", self.lo)
        if self.forced and lo != hi:
            raise InvalidFieldError("thresholds_[lo]", f"must equal hi for the forced last rung of a stage (hi={hi})", self.lo)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @classmethod
    def final(cls, threshold: float) -> "Gate":
        t = check_probability("thresholds_[threshold]", threshold)
        return cls(t, t, forced=True)

    def decide(self, prob) -> np.ndarray:
        """int8 [N]: ICK0 / IDK / ICK1 per probability."""
        p = np.asarray(prob, dtype=np.float64)
        if self.forced:
            return np.where(p >= self.hi, ICK1, ICK0).astype(np.int8)
        out = np.full(p.shape, IDK, dtype=np.int8)
        out[p >= self.hi] = ICK1
        out[p <= self.lo] = ICK0
        return out

    def to_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "forced": self.forced}

    @classmethod
    def from_dict(cls, d: dict) -> "Gate":
        unknown = set(d) - {"lo", "hi", "forced"}
        if unknown:
            raise InvalidFieldError("thresholds_", "has unknown keys", sorted(unknown), ["lo", "hi", "forced"])
        return cls(d.get("lo"), d.get("hi"), bool(d.get("forced", False)))
