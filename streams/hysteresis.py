"""Risk alarm with hysteresis: a patient's continuous risk raises an alarm above one level and clears it only
after staying below a lower level for a hold time, so a risk curve wandering across a line does not flap.

    h = RiskHysteresis(HysteresisConfig(raise_at=0.7, clear_below=0.5, hold_s=10))
    state = h.update("bed-12", t_s=301.0, risk=0.82)   # True: alarm on

One state per patient; times are the windows' end times (stream seconds). A window older than the last
one seen for that patient is ignored (out of order), and a gap longer than ``reset_after_s``, forwards or
backwards (a monitor that restarted its stream), starts the patient afresh (alarm off).

>>> h = RiskHysteresis(HysteresisConfig(raise_at=0.7, clear_below=0.5, hold_s=2))
>>> [h.update("p", t, r) for t, r in enumerate([0.6, 0.75, 0.65, 0.45, 0.72, 0.4, 0.3, 0.2])]
[False, True, True, True, True, True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.errors import InvalidFieldError


@dataclass(frozen=True)
class HysteresisConfig:
    raise_at: float = 0.7  # calibrated P(true alarm) at or above which the risk alarm raises
    clear_below: float = 0.5  # below this for hold_s seconds, it clears
    hold_s: float = 10.0
    reset_after_s: float = 30.0  # a gap in a patient's windows longer than this resets its state

    def __post_init__(self):
        for name in ("raise_at", "clear_below"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise InvalidFieldError(f"hysteresis.{name}", "must be in (0, 1)", v)
        if not self.clear_below <= self.raise_at:
            raise InvalidFieldError("hysteresis.clear_below", f"must be <= hysteresis.raise_at ({self.raise_at})", self.clear_below)
        for name in ("hold_s", "reset_after_s"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InvalidFieldError(f"hysteresis.{name}", "must be a finite number >= 0", v)

    @classmethod
    def from_dict(cls, d: dict | None) -> "HysteresisConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidFieldError("hysteresis", "has unknown keys", sorted(unknown), sorted(cls.__dataclass_fields__))
        return cls(**{k: float(v) for k, v in d.items()})


class RiskHysteresis:
    """Per-patient alarm state driven by the risk published every hop."""

    def __init__(self, config: HysteresisConfig | None = None):
        self.config = config or HysteresisConfig()
        self._state: dict[str, list] = {}  # patient -> [on, last_t, below_since or None]

    def update(self, patient: str, t_s: float, risk: float) -> bool:
        c = self.config
        st = self._state.get(patient)
        if st is not None and st[1] - c.reset_after_s <= t_s <= st[1]:
            return st[0]  # duplicate or out of order: the state stands
        if st is None or abs(t_s - st[1]) > c.reset_after_s:  # a long gap, or a stream that restarted from its start
            st = [False, t_s, None]
            self._state[patient] = st
        st[1] = t_s
        if risk is None or not np.isfinite(risk):
            return st[0]  # no score this hop (degraded): keep the state
        if not st[0]:
            if risk >= c.raise_at:
                st[0], st[2] = True, None
        elif risk < c.clear_below:
            if st[2] is None:
                st[2] = t_s
            if t_s - st[2] >= c.hold_s:
                st[0], st[2] = False, None
        else:
            st[2] = None
        return st[0]

    def forget(self, patient: str) -> None:
        self._state.pop(patient, None)


def count_transitions(states) -> int:
    """Off->on raises in a sequence of alarm states."""
    s = np.asarray(states, dtype=bool)
    return int((s[1:] & ~s[:-1]).sum() + (s[0] if len(s) else 0))
