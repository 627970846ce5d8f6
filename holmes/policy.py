"""Run-time policy: for each request batch, the most accurate ensemble of the plan that fits the slack.

    slack_ms = deadline_ms - elapsed_ms (already spent before the decision) - expected queueing

Expected queueing is ensemble-specific: each member deployment serves one batch at a time, so a request
waits for the predicted work already queued on the busiest of *its* members (``backlog_ms`` per member,
kept by the service), or the service-wide ``queue_ms`` when that is larger (all replicas share the cores, so
requests in flight finish together: the service passes the predicted service time of every request in
flight, or the queued member work divided by the cores when that is larger). Ensembles are tried most accurate first (by
the rows' stated nested challenge score, then AUROC); the
first whose expected queueing plus predicted service time at this batch size fits the deadline wins. Under a burst the queue term grows, so the policy falls to cheaper ensembles instead of missing
deadlines; when even the cheapest does not fit, the cheapest on the profiles is used and the answer is marked
``fits=False``. Predictions are corrected online by the ratio measured / predicted service time (an
exponentially weighted mean per ensemble), so a slower machine than the profiles' is learned from traffic.

    >>> from holmes.compose import EnsembleSpec, Plan
    >>> plan = Plan((EnsembleSpec("big", ("a", "b"), auroc=0.95), EnsembleSpec("small", ("a",), auroc=0.90)),
    ...             {"a": {"1": 1.0, "64": 40.0}, "b": {"1": 2.0, "64": 90.0}})
    >>> p = SlackPolicy(plan)
    >>> p.choose(batch=64, deadline_ms=500).spec.name, p.choose(batch=64, deadline_ms=60).spec.name
    ('big', 'small')
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Mapping

from models.errors import InvalidFieldError

from .compose.plan import EnsembleSpec, Plan
from .queueing import LatencyModel, interp_ms


def _strength(e: EnsembleSpec) -> tuple[float, float]:
    """How accurate a plan row is: its stated nested challenge score, then its AUROC (-1 where a row states none)."""
    return (e.score if e.score is not None else -1.0, e.auroc if e.auroc is not None else -1.0)


@dataclass(frozen=True)
class Choice:
    spec: EnsembleSpec
    predicted_ms: float  # predicted service time, corrected by what was measured
    slack_ms: float
    fits: bool
    requested: bool = False


class SlackPolicy:
    """Thread-safe; one instance per ingress replica."""

    def __init__(self, plan: Plan, model: LatencyModel | None = None, ewma_alpha: float = 0.2, safety: float = 1.0):
        self.plan = plan
        self.model = model or (LatencyModel.from_dict(plan.latency_model) if plan.latency_model else LatencyModel())
        self.ewma_alpha = ewma_alpha
        self.safety = safety
        # most accurate first by the rows' stated nested challenge score (the figure a plan row is chosen on), then AUROC, then
        # fewer members; ranking by AUROC alone put plan v0004's 6-member 500 ms row (AUROC 0.954, nested score 73.8) ahead
        # of features-typed (0.945, 78.9)
        self.menu = sorted(plan.ensembles, key=lambda e: tuple(-v for v in _strength(e)) + (len(e.members),))
        self._ratio = {e.name: 1.0 for e in plan.ensembles}
        self._lock = threading.Lock()

    def member_ms(self, name: str, batch: int) -> float:
        row = self.model.member_ms.get(name) or self.plan.member_latency_ms[name]
        return interp_ms(row, batch)

    def profile_ms(self, spec: EnsembleSpec, batch: int) -> float:
        """Service time of ``spec`` at ``batch`` windows on the profiles, before any correction from traffic."""
        return self.model.ensemble_service_ms([self.member_ms(m, batch) for m in spec.members])

    def predict_ms(self, spec: EnsembleSpec, batch: int) -> float:
        return self.profile_ms(spec, batch) * self._ratio.get(spec.name, 1.0)

    def at_least(self, floor: EnsembleSpec) -> list[EnsembleSpec]:
        """The menu's rows no weaker than ``floor`` on nested CV (stated score, AUROC where a row has none)."""
        return [e for e in self.menu if e.name == floor.name or _strength(e) >= _strength(floor)]

    def choose(self, batch: int, deadline_ms: float, elapsed_ms: float = 0.0, queue_ms: float = 0.0, ensemble: str | None = None,
               backlog_ms: Mapping[str, float] | None = None, floor: str | None = None) -> Choice:
        """``floor``: a plan row's name (or "auto": ``Plan.floor()``); only rows at least as strong are chosen, and
        the floor itself when none of them fits (``fits=False``), never a weaker one."""
        if not (isinstance(deadline_ms, (int, float)) and math.isfinite(deadline_ms) and deadline_ms > 0):
            raise InvalidFieldError("deadline_ms", "must be a finite number > 0", deadline_ms)
        if batch < 1:
            raise InvalidFieldError("batch", "must be >= 1 window", batch)
        backlog = backlog_ms or {}

        def slack_of(spec: EnsembleSpec) -> float:
            wait = max((backlog.get(m, 0.0) for m in spec.members), default=0.0)
            return deadline_ms - elapsed_ms - max(queue_ms, wait)

        if ensemble is not None:
            spec = self.plan.get(ensemble)
            pred, slack = self.predict_ms(spec, batch), slack_of(spec)
            return Choice(spec, pred, slack, pred * self.safety <= slack, requested=True)
        menu = self.menu
        floor_spec = None
        if floor is not None:
            floor_spec = self.plan.floor() if floor == "auto" else self.plan.get(floor)
            menu = self.at_least(floor_spec)
        preds = [(spec, self.predict_ms(spec, batch), slack_of(spec)) for spec in menu]
        for spec, pred, slack in preds:
            if pred * self.safety <= slack:
                return Choice(spec, pred, slack, True)
        if floor_spec is not None:
            return Choice(floor_spec, self.predict_ms(floor_spec, batch), slack_of(floor_spec), False)
        # none fits: the cheapest on the profiles (plus its wait). The learned corrections are left out of this ranking:
        # each is a ratio measured at the batch sizes its ensemble happened to serve, and a fixed per-request cost makes
        # small batches read slow, so an ensemble that served only small requests could rank dearer than one that holds
        # it and more members
        spec, pred, slack = min(preds, key=lambda sp: (self.profile_ms(sp[0], batch) - sp[2], sp[1]))
        return Choice(spec, pred, slack, False)

    def observe(self, name: str, batch: int, measured_ms: float) -> None:
        """Feed back a measured service time so later predictions for this ensemble follow the machine."""
        base = self.profile_ms(self.plan.get(name), batch)
        if base <= 0 or not math.isfinite(measured_ms):
            return
        r = min(max(measured_ms / base, 0.25), 8.0)
        with self._lock:
            self._ratio[name] = (1 - self.ewma_alpha) * self._ratio[name] + self.ewma_alpha * r

    def ratios(self) -> dict:
        with self._lock:
            return dict(self._ratio)
