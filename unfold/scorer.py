"""The ``cascade`` stream scorer (registered in ``streams.scorer`` on import).

Per tick: every window runs the cheap rungs in the consumer process; only the windows that reach the
costly rung (IDK at the feature rung, or a stage the feature rung could not settle) are sent, as ONE
batch, to the costly scorer: the Ray Serve service in production (a ``deploy.scorer.ServeScorer`` that the
composition root injects as ``costly``), or the registry ensemble in process when none is given. Every
score carries the stage it ended at and its path (``models``: "stage/rung:DECISION", then the members the
service used for escalated windows).

When the cascade's costly rung is a row of a serving plan (``holmes cascade fit --plan``), its escalations ask the
service for that row by name: the scorer sets ``costly.ensemble`` to the row's name where the costly scorer has
such an attribute (``deploy.scorer.ServeScorer`` does; ``unfold`` never imports deploy), so escalated windows are
scored by the ensemble the gates were tuned on, not by whatever row the service's policy would pick.

    import unfold.scorer; from streams.scorer import make_scorer
    scorer = make_scorer("cascade", costly=serve_scorer)          # cascade dir: $HOLMES_CASCADE or artifacts/cascade
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from models.errors import InvalidFieldError
from models.fast_forest import warm as warm_forests
from streams.scorer import MemberScorer, ScoreOut, WindowBatch, register_scorer

from .calibrate import publish
from .cascade import CascadeResult
from .live import LiveRunner, batch_of
from .persist import FittedCascade, load

log = logging.getLogger(__name__)


def run_batch(fitted: FittedCascade, batch: WindowBatch, costly) -> tuple[CascadeResult, LiveRunner]:
    c = fitted.cascade
    runner = LiveRunner(c.stages, fitted.models, costly, batch, costly_macs=c.costs.macs("ensemble"))
    return c.run(runner, batch.alarm_types), runner


def local_costly(fitted: FittedCascade) -> MemberScorer:
    """The costly rung in process: the cascade's registry ensemble (offline evaluation, no service)."""
    return MemberScorer(fitted.ensemble.load(), threshold=0.5)


def local_verdicts(fitted: FittedCascade) -> MemberScorer:
    """The verdict lane in process: the cascade's registry ensemble with the threshold chosen on its out-of-fold
    predictions (for the challenge's 5:1 cost) and the calibration map fitted on them."""
    from models.calibration import fit_on_oof
    from models.metrics import best_threshold

    ref = fitted.ensemble
    oof = next(iter(ref.profiles().values()))["oof"]
    prob, folds = ref.oof(oof["records"])
    y = np.asarray(oof["label"], dtype=int)
    return MemberScorer(ref.load(), threshold=best_threshold(y, prob), calibrator=fit_on_oof(prob, y, folds))


def score_windows(fitted: FittedCascade, windows, masks, alarm_types, costly=None) -> tuple[CascadeResult, LiveRunner]:
    """Offline: the cascade on raw windows (e.g. the alarm windows of a held-out folder). A service ``costly`` is asked
    for the cascade's own plan row (``request_own_row``)."""
    if costly is None:
        costly = local_costly(fitted)
    request_own_row(fitted, costly)
    return run_batch(fitted, batch_of(windows, masks, alarm_types), costly)


def plan_row(fitted: FittedCascade) -> str | None:
    """The name of the plan row the cascade's costly rung is (``info["ensemble"]`` of a fit with ``--plan``, or the
    saved ensemble reference's plan file), or None for a registry ensemble row."""
    src = fitted.info.get("ensemble") or {}
    if src.get("kind") == "plan_row":
        return src["row"]
    return fitted.ensemble.name if getattr(fitted.ensemble, "plan", None) else None


def request_own_row(fitted: FittedCascade, costly) -> str | None:
    """Make ``costly`` (a service scorer with an ``ensemble`` attribute) ask for the cascade's own plan row; returns
    the row asked for (None: a registry ensemble, or a scorer that cannot be asked for a row)."""
    row = plan_row(fitted)
    if row is None or costly is None or not hasattr(costly, "ensemble"):
        return None
    current = getattr(costly, "ensemble")
    if current is not None and current != row:
        log.warning("cascade %s: its costly rung is plan row %s, but the costly scorer asked for %s; asking for %s (the row "
                    "the gates were tuned on)", fitted.version, row, current, row)
    costly.ensemble = row
    return row


def rung_maps(fitted: FittedCascade) -> dict:
    """The fitted cascade's calibration map per deciding rung (none for a cascade fitted before they existed)."""
    from models.calibration import Calibrator

    return {name: Calibrator.from_dict(d) for name, d in fitted.info.get("calibration", {}).items()}


OVERLAP_MIN = 32  # routine batches of at least twice this many windows are scored as two overlapping halves


class CascadeScorer:
    """The cascade for routine windows. A window that answers a monitor alarm is never answered by a cheap rung: it
    goes to ``verdicts`` (the ensemble service, or the registry ensemble in process), in a call of its own, ahead
    of the routine windows of its tick; its RiskScore names the ensemble's members and ``verdict_lane`` in the
    timings."""

    def __init__(self, fitted: FittedCascade, costly, verdicts=None):
        self.fitted = fitted
        self.costly = costly
        self.costly_row = request_own_row(fitted, costly)  # escalations: the plan row the gates were tuned on, by name
        self.verdicts = verdicts
        self.maps = rung_maps(fitted)
        self.name = f"cascade:{fitted.version or 'unsaved'}+{getattr(costly, 'name', 'costly')}"
        self._lock = threading.Lock()
        self._pool = None  # two threads for the halves of a large routine batch (``_routine``)
        self.stats = {"windows": 0, "escalated": 0, "escalation_calls": 0, "cheap_ms": 0.0, "costly_ms": 0.0}
        warm_forests()  # the cheap rungs' compiled forest walk loads now, not inside the first tick's deadline

    def score(self, batch: WindowBatch) -> list[ScoreOut]:
        if len(batch) == 0:
            return []
        alarm = np.asarray(batch.is_alarm, dtype=bool)
        if not alarm.any():
            return self._routine(batch)
        if self.verdicts is None:
            self.verdicts = local_verdicts(self.fitted)
        out: list[ScoreOut | None] = [None] * len(batch)
        a, r = np.flatnonzero(alarm), np.flatnonzero(~alarm)
        t0 = time.perf_counter()
        for i, o in zip(a, self.verdicts.score(batch.take(a))):  # first: the verdicts' deadlines are the tick's
            out[i] = ScoreOut(o.probability, o.positive, o.stage, o.models, o.degraded_reason,
                              {**o.timings_ms, "verdict_lane": 1.0, "verdict_ms": (time.perf_counter() - t0) * 1e3})
        with self._lock:
            self.stats["verdicts"] = self.stats.get("verdicts", 0) + len(a)
        for i, o in zip(r, self._routine(batch.take(r)) if len(r) else []):
            out[i] = o
        return out

    def _routine(self, batch: WindowBatch) -> list[ScoreOut]:
        """Routine windows; a batch of ``2 * OVERLAP_MIN`` or more is scored as two halves in two threads, so one half's
        cheap rungs run while the other half waits for the service (the wait releases the GIL): the consumer's one
        thread no longer idles through every escalation call."""
        n = len(batch)
        if n < 2 * OVERLAP_MIN:
            return self._routine_part(batch)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(2, thread_name_prefix="cascade")
        halves = [self._pool.submit(self._routine_part, batch.take(range(a, b))) for a, b in ((0, n // 2), (n // 2, n))]
        return [o for f in halves for o in f.result()]

    def _routine_part(self, batch: WindowBatch) -> list[ScoreOut]:
        t0 = time.perf_counter()
        res, runner = run_batch(self.fitted, batch, self.costly)
        total_ms = (time.perf_counter() - t0) * 1e3
        costly_ms = sum(c["ms"] for c in runner.calls if c["component"] == "ensemble")
        with self._lock:
            self.stats["windows"] += len(batch)
            self.stats["escalated"] += len(runner.costly_prob)
            self.stats["escalation_calls"] += sum(1 for c in runner.calls if c["component"] == "ensemble")
            self.stats["costly_ms"] += costly_ms
            self.stats["cheap_ms"] += total_ms - costly_ms
            comp = self.stats.setdefault("component_ms", {})  # where a routine window's time goes, per cascade component
            for c in runner.calls:
                comp[c["component"]] = comp.get(c["component"], 0.0) + c["ms"]
            comp["cascade_logic"] = comp.get("cascade_logic", 0.0) + total_ms - sum(c["ms"] for c in runner.calls)
        published = publish(self.maps, res.probability, res.paths)  # calibrated per deciding rung; verdicts unchanged
        out = []
        for i in range(len(batch)):
            path = tuple(f"{name}:{d}" for name, d in res.paths[i])
            models = path + tuple(runner.costly_models.get(i, ()))
            timings = {"cascade_cost_ms": float(res.cost_ms[i]), "batch_ms": total_ms, "costly_ms": costly_ms,
                       "batch_size": float(len(batch)), "level": float(res.level[i])}
            out.append(ScoreOut(float(published[i]), bool(res.positive[i]), int(res.stage[i]), models, None, timings))
        return out


_OPTIONS = {"cascade", "version", "costly", "verdicts", "registry"}
_IGNORED = {"member", "member_path", "threshold", "data", "deadline_ms"}


def cascade_factory(**options) -> CascadeScorer:
    """``cascade``: folder of fitted cascades (default $HOLMES_CASCADE / artifacts/cascade); ``costly``: the
    scorer for escalated windows (default: the registry ensemble in process); ``verdicts``: the scorer for the
    windows that answer alarms (default: the registry ensemble in process, ``local_verdicts``)."""
    unknown = set(options) - _OPTIONS - _IGNORED
    if unknown:
        raise InvalidFieldError("scorer options", "has unknown keys for the cascade scorer", sorted(unknown), sorted(_OPTIONS))
    fitted = load(options.get("cascade"), options.get("version"))
    costly = options.get("costly")
    if costly is None:
        log.info("cascade: no service given, the costly rung runs %s in process", fitted.ensemble.name)
        costly = local_costly(fitted)
    verdicts = options.get("verdicts")
    if verdicts is None:  # loaded now, not at the first alarm: that verdict has a deadline
        log.info("cascade: verdicts from %s in process", fitted.ensemble.name)
        verdicts = local_verdicts(fitted)
    return CascadeScorer(fitted, costly, verdicts)


register_scorer("cascade", cascade_factory, replace=True)

__all__ = ["CascadeScorer", "cascade_factory", "run_batch", "score_windows", "local_costly", "plan_row", "request_own_row"]
