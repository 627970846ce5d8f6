"""The scorer interface the consumer calls once per tick, the in-process member scorer, and the factory
registry through which higher packages (the Ray Serve ensemble, the cascade) plug in by name.

A scorer gets every window that became ready at one tick, of all patients, as ONE ``WindowBatch`` and
returns one ``ScoreOut`` per window, in order. The consumer checks that contract.

    from streams import register_scorer, make_scorer

    register_scorer("serve", lambda **opts: ServeScorer(**opts))   # in the package that owns it
    scorer = make_scorer("serve", deadline_ms=800)                 # in the composition root

>>> sorted(available_scorers())[:1]
['member']
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from models.errors import InvalidFieldError
from models.member import Member, check_batch, check_output


@dataclass(frozen=True)
class WindowBatch:
    """Windows of many patients at one tick. ``windows`` float32 [B, 5, n] raw 250 Hz slots, NaN allowed."""

    patient_ids: list[str]
    window_end_s: np.ndarray  # float64 [B], stream seconds
    windows: np.ndarray
    masks: np.ndarray  # bool [B, 5]
    alarm_types: list[str]  # the alarm context of each window (models.data.ALARM_TYPES)
    is_alarm: np.ndarray  # bool [B]: this window answers a monitor alarm (a verdict is due)
    sample_unix_s: np.ndarray  # float64 [B]: wall clock of each window's last sample
    deadline_unix_s: np.ndarray  # float64 [B]: when the score is due (sample time + deadline)
    features: np.ndarray | None = None  # float [B, F]: the windows' models.features rows where already extracted
    # per window, (windows [m, 5, n], masks [m, 5]) of the same patient's windows ending 1..m hops before it (newest
    # first), where the stream still had them: alarm windows, for a verdict averaged over them (VerdictBlend)
    earlier: list | None = None

    def __len__(self) -> int:
        return len(self.patient_ids)

    def take(self, idx) -> "WindowBatch":
        """The windows at positions ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        return WindowBatch([self.patient_ids[i] for i in idx], self.window_end_s[idx], self.windows[idx], self.masks[idx],
                           [self.alarm_types[i] for i in idx], self.is_alarm[idx], self.sample_unix_s[idx], self.deadline_unix_s[idx],
                           None if self.features is None else self.features[idx],
                           None if self.earlier is None else [self.earlier[i] for i in idx])


@dataclass(frozen=True)
class ScoreOut:
    """The score of one window. ``positive`` is the scorer's decision at its own threshold."""

    probability: float | None
    positive: bool | None
    stage: int = 1
    models: tuple[str, ...] = ()
    degraded_reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, batch: WindowBatch) -> list[ScoreOut]: ...


def check_scores(scorer_name: str, scores: Sequence[ScoreOut], batch_size: int) -> list[ScoreOut]:
    """Contract check on what a scorer returns: one ScoreOut per window, probabilities in [0, 1]."""
    scores = list(scores)
    if len(scores) != batch_size:
        raise RuntimeError(f"scorer {scorer_name} returned {len(scores)} scores for a batch of {batch_size}")
    for s in scores:
        if not isinstance(s, ScoreOut):
            raise RuntimeError(f"scorer {scorer_name} returned {type(s).__name__}, not ScoreOut")
        if s.probability is not None and not (0.0 <= s.probability <= 1.0):
            raise RuntimeError(f"scorer {scorer_name} returned probability {s.probability} outside [0, 1]")
    return scores


class MemberScorer:
    """Scores a batch in process with any ``models.member.Member``.

    The decision threshold is ``threshold`` if given, else the member's learned ``threshold_`` (a number,
    or a dict per alarm type with an optional "default"), else 0.5. ``workers`` > 1 spreads each batch over
    that many processes (``streams.parallel``); the scores are the same. ``calibrator`` (a
    ``models.calibration.Calibrator``) maps the member's probability to the published one; the verdict is
    taken on the member's own probability against its threshold, so calibration (strictly increasing) never
    changes a verdict.
    """

    def __init__(self, member: Member, threshold: float | dict | None = None, stage: int = 1, workers: int = 1, calibrator=None):
        if not isinstance(member, Member):
            raise InvalidFieldError("member", "must implement models.member.Member (name, kind, predict_proba)", type(member).__name__)
        self.member = member
        self.name = f"member:{member.name}"
        self.threshold = threshold if threshold is not None else getattr(member, "threshold_", 0.5)
        self.stage = stage
        self.calibrator = calibrator
        self.predict = member.predict_proba
        if getattr(member, "kind", None) == "features":
            from models.features import warm_up

            warm_up()  # the compiled feature engine and forest walk load here, not on the stream's first tick
            warm_model(member)
        if workers != 1:
            from .parallel import ParallelPredict

            self.predict = ParallelPredict(member, workers).start()

    def close(self) -> None:
        """Stop the worker processes, if any (the scorer then scores in this process only)."""
        close = getattr(self.predict, "close", None)
        if close is not None:
            close()
            self.predict = self.member.predict_proba

    def threshold_for(self, alarm_type: str) -> float:
        return threshold_for(self.threshold, alarm_type)

    def score(self, batch: WindowBatch) -> list[ScoreOut]:
        check_batch(batch.windows, batch.masks, batch.alarm_types)
        t0 = time.perf_counter()
        p = check_output(self.member.name, self.predict(batch.windows, batch.masks, batch.alarm_types), len(batch))
        timing = {"model_ms": (time.perf_counter() - t0) * 1e3, "batch_size": float(len(batch))}
        return member_scores(p, self.calibrator, self.threshold, batch.alarm_types, self.stage, (self.member.name,), timing)


def threshold_for(threshold: float | dict, alarm_type: str) -> float:
    """A scorer's decision threshold for one alarm type (a dict maps types, with "default" for the rest)."""
    if isinstance(threshold, dict):
        return float(threshold.get(alarm_type, threshold.get("default", 0.5)))
    return float(threshold)


def member_scores(p, calibrator, threshold, alarm_types, stage: int, models: tuple, timing: dict) -> list[ScoreOut]:
    """One ``ScoreOut`` per window of a member's raw probabilities ``p``: the calibrated probability is published, the
    decision is the raw one at the member's threshold (the threshold was chosen on raw probabilities)."""
    published = p if calibrator is None else calibrator.transform(p)
    return [ScoreOut(float(ci), bool(pi >= threshold_for(threshold, a)), stage, models, None, timing)
            for pi, ci, a in zip(p, published, alarm_types)]


def warm_model(member) -> None:
    """One prediction on a row of zeros for every alarm type, so compiled parts (``models.fast_forest``) load now."""
    from models.data import ALARM_TYPES
    from models.features import N_FEATURES

    if hasattr(member, "proba_from_features"):
        member.proba_from_features(np.zeros((len(ALARM_TYPES), N_FEATURES)), list(ALARM_TYPES))


DATA_ERRORS = (ValueError, TypeError, ArithmeticError, IndexError, KeyError)  # what one window's data can cause


def score_isolating(scorer: "Scorer", batch: WindowBatch, on_failure=None, _budget: list | None = None) -> list[ScoreOut]:
    """``scorer.score(batch)``; when it raises a data error (``DATA_ERRORS``: one patient's bad signal), the batch is
    split in halves and each half retried, so the window that breaks the scorer is marked degraded alone and every
    other window is scored. Any other failure (a service down, a timeout) marks the whole batch at once: retrying
    halves would only multiply the wait. At most ``4 (log2(n) + 1) + 4`` calls per batch; past that the rest is marked.

    ``on_failure(exception, n_windows)`` is called for every failed call (for logs and metrics).
    """
    budget = _budget if _budget is not None else [4 * max(1, len(batch)).bit_length() + 4]
    if budget[0] <= 0:
        return [ScoreOut(None, None, 1, (), "scorer failed: retries of this batch used up") for _ in range(len(batch))]
    budget[0] -= 1
    try:
        return check_scores(scorer.name, scorer.score(batch), len(batch))
    except Exception as e:  # a failing scorer must not stop the stream
        if on_failure is not None:
            on_failure(e, len(batch))
        reason = f"scorer failed: {type(e).__name__}: {e}"[:300]
        if len(batch) == 1 or not isinstance(e, DATA_ERRORS):
            return [ScoreOut(None, None, 1, (), reason) for _ in range(len(batch))]
        h, n = len(batch) // 2, len(batch)
        return (score_isolating(scorer, batch.take(range(h)), on_failure, budget)
                + score_isolating(scorer, batch.take(range(h, n)), on_failure, budget))


# ---------------------------------------------------------------------- factory registry
ScorerFactory = Callable[..., Scorer]
_FACTORIES: dict[str, ScorerFactory] = {}


def register_scorer(name: str, factory: ScorerFactory, *, replace: bool = False) -> None:
    """Make ``make_scorer(name, **options)`` call ``factory(**options)``. Higher packages call this at import."""
    if not name or not name.replace("-", "_").isidentifier():
        raise InvalidFieldError("name", "must be an identifier-like scorer name", name)
    if name in _FACTORIES and not replace and _FACTORIES[name] is not factory:
        raise InvalidFieldError("name", "is already registered (pass replace=True to override)", name, sorted(_FACTORIES))
    _FACTORIES[name] = factory


def available_scorers() -> list[str]:
    return sorted(_FACTORIES)


def make_scorer(name: str, **options) -> Scorer:
    if name not in _FACTORIES:
        raise InvalidFieldError("scorer", "must be a registered scorer", name, sorted(_FACTORIES))
    scorer = _FACTORIES[name](**options)
    if not isinstance(scorer, Scorer):
        raise RuntimeError(f"scorer factory {name!r} returned {type(scorer).__name__}, which has no name/score()")
    return scorer


def _member_factory(member: Member | None = None, member_path: str | None = None, threshold: float | None = None,
                    workers: int = 1, **_ignored) -> Scorer:
    """``member``: a Member object; or ``member_path``: a pickled Member (a trusted local file)."""
    if member is None:
        if member_path is None:
            raise InvalidFieldError("member_path", "is required for the 'member' scorer (a pickled models Member)", None)
        path = Path(member_path)
        if not path.is_file():
            raise InvalidFieldError("member_path", "must be an existing file", str(path))
        with path.open("rb") as f:
            member = pickle.load(f)
    return MemberScorer(member, threshold, workers=workers)


register_scorer("member", _member_factory)
