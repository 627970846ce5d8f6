"""The ``incremental`` scorer: routine windows featurized from per-patient state (registered on import).

``make_scorer("incremental", model_dir=PATH)`` serves ``features-typed-inc`` (``models.incremental_model``: the
routine model fitted on ``models.incremental`` features) with its calibration map. It gets the same
``WindowBatch`` as every scorer; per patient it keeps an ``IncrementalFeatures`` bed and the end of the window
it last saw:

- the window one hop (1 s) after that one: only its newest second is pushed (the fast path: each sample is
  filtered and searched for beats once);
- the window it last saw, again (a routine window re-cut as the window of an alarm that came after it): nothing
  is pushed, the state's features are that window's, as they were;
- anything else (a new patient, a gap the windower did not bridge, a window older than the last one, a
  restarted stream): the bed is reset and the whole window pushed, so its features are those of a stream that
  began at the window's start.

A patient that appears twice in one batch is featurized in order of window end. Beds are reused after
``stale_s`` without a window; the pool doubles when every bed is taken.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from models.errors import InvalidFieldError
from models.features import N_FEATURES
from models.member import check_batch, check_output

from .scorer import ScoreOut, WindowBatch, member_scores, register_scorer, threshold_for, warm_model

log = logging.getLogger(__name__)


class IncrementalScorer:
    def __init__(self, member, calibrator=None, threshold: float | dict | None = None, capacity: int = 256,
                 fs_hz: int = 250, window_s: float = 16.0, hop_s: float = 1.0, stale_s: float = 120.0, stage: int = 1):
        from models.incremental import IncrementalFeatures

        self.member = member
        self.name = getattr(member, "name", "features-typed-inc")
        self.calibrator = calibrator
        self.threshold = member.threshold_ if threshold is None else threshold
        self.stage = stage
        self.fs, self.window_s, self.hop_s, self.stale_s = int(fs_hz), float(window_s), float(hop_s), float(stale_s)
        self.inc = IncrementalFeatures(capacity, self.fs, self.window_s)
        self.bed: dict[str, int] = {}
        self.last_end: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        self.free = list(range(capacity - 1, -1, -1))
        self.counts = {"hop": 0, "same": 0, "restart": 0}
        self.history = 0  # earlier windows' features kept per bed (``keep_history``)
        self._warm()

    def keep_history(self, n: int) -> None:
        """Keep the features of each patient's last ``n`` windows (``earlier_features``)."""
        self.history = int(n)
        cap, slots = self.inc.B, self.history + 1  # the window just scored (an alarm's own) and the n before it
        self._hist_end = np.full((cap, slots), np.nan)
        self._hist_X = np.zeros((cap, slots, N_FEATURES))
        self._hist_next = np.zeros(cap, dtype=np.int64)

    def _remember(self, beds: np.ndarray, ends: np.ndarray, X: np.ndarray) -> None:
        if not self.history:
            return
        if len(self._hist_next) < self.inc.B:  # the pool grew
            extra = self.inc.B - len(self._hist_next)
            self._hist_end = np.vstack([self._hist_end, np.full((extra, self._hist_end.shape[1]), np.nan)])
            self._hist_X = np.concatenate([self._hist_X, np.zeros((extra, *self._hist_X.shape[1:]))])
            self._hist_next = np.concatenate([self._hist_next, np.zeros(extra, dtype=np.int64)])
        slot = self._hist_next[beds] % self._hist_end.shape[1]
        self._hist_end[beds, slot] = ends
        self._hist_X[beds, slot] = X
        self._hist_next[beds] += 1

    def earlier_features(self, patient_id: str, end_s: float, k: int) -> np.ndarray:
        """[m, N_FEATURES]: the features of the patient's windows ending 1..m hops before ``end_s`` (m <= ``k``, newest
        first) that this scorer featurized; it stops at the first one it did not see."""
        b = self.bed.get(patient_id)
        rows = []
        for o in range(1, min(k, self.history) + 1 if b is not None else 1):
            hit = np.flatnonzero(np.abs(self._hist_end[b] - (end_s - o * self.hop_s)) < 1e-6)
            if not len(hit):
                break
            rows.append(self._hist_X[b, hit[0]])
        return np.stack(rows) if rows else np.empty((0, N_FEATURES))

    def probabilities(self, X: np.ndarray, alarm_types: list[str]) -> np.ndarray:
        """Calibrated probabilities of feature rows ``X`` (as ``score`` publishes them)."""
        p = check_output(self.name, self.member.proba_from_features(X, alarm_types), len(X))
        return self.calibrator.transform(p) if self.calibrator is not None else np.asarray(p, dtype=np.float64)

    def _warm(self) -> None:
        """Compile (or load from numba's cache) the kernels now, not on the stream's first tick."""
        from models.incremental import IncrementalFeatures

        x = np.random.default_rng(0).standard_normal((1, 5, int(self.window_s * self.fs) + self.fs))
        w = IncrementalFeatures(1, self.fs, self.window_s)
        w.push(x)
        w.features()
        warm_model(self.member)

    def threshold_for(self, alarm_type: str) -> float:
        return threshold_for(self.threshold, alarm_type)

    def _take_bed(self, pid: str, now: float) -> int:
        b = self.bed.get(pid)
        if b is not None:
            return b
        if not self.free:
            stale = [p for p, t in self.last_seen.items() if now - t > self.stale_s]
            for p in stale:
                self.free.append(self.bed.pop(p))
                self.last_end.pop(p, None)
                self.last_seen.pop(p, None)
        if not self.free:
            old = self.inc.B
            self.inc.grow(2 * old)
            self.free = list(range(2 * old - 1, old - 1, -1))
            log.info("incremental features: %d beds in use, pool grown to %d", old, 2 * old)
        b = self.free.pop()
        self.bed[pid] = b
        if self.history and b < len(self._hist_next):  # a bed reused by another patient forgets the last one's windows
            self._hist_end[b] = np.nan
        return b

    def features(self, batch: WindowBatch) -> np.ndarray:
        """[B, N_FEATURES] of the batch's windows, advancing each patient's state."""
        self._check_length(batch)
        X = np.full((len(batch), N_FEATURES), np.nan)
        pending = list(np.argsort(batch.window_end_s, kind="stable"))
        now = time.monotonic()
        while pending:  # rounds in which each patient appears once
            seen, this, rest = set(), [], []
            for i in pending:
                pid = batch.patient_ids[i]
                (rest if pid in seen else this).append(i)
                seen.add(pid)
            self._featurize(batch, np.array(this), X, now)
            pending = rest
        return X

    def _check_length(self, batch: WindowBatch) -> None:
        n = batch.windows.shape[-1]
        if n != int(round(self.window_s * self.fs)):
            raise InvalidFieldError("windows", f"must hold {self.window_s:g} s at {self.fs} Hz ({int(self.window_s * self.fs)} samples)", n)

    def _step(self, pids, ends, beds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hop, same) per window: one hop after the patient's last window, or that window again, on a bed that saw a
        whole window; anything else restarts the bed."""
        since = np.array([e - self.last_end.get(p, -np.inf) for p, e in zip(pids, ends)])
        whole = self.inc.samples(beds) >= self.inc.N
        return (np.abs(since - self.hop_s) < 1e-6) & whole, (np.abs(since) < 1e-6) & whole

    def _featurize(self, batch: WindowBatch, idx: np.ndarray, X: np.ndarray, now: float) -> None:
        pids = [batch.patient_ids[i] for i in idx]
        beds = np.array([self._take_bed(p, now) for p in pids], dtype=np.int64)
        ends = batch.window_end_s[idx]
        hop, same = self._step(pids, ends, beds)  # same: e.g. a window re-cut as an alarm's, read from the state as it is
        restart = ~hop & ~same
        for p in pids:  # a push that then fails leaves the bed to restart on a retry, never to take a second twice
            self.last_end.pop(p, None)
        if restart.any():
            self.inc.reset(beds[restart])
            self.inc.push(batch.windows[idx[restart]], beds=beds[restart])
        if hop.any():  # only the newest second is read (not a copy of each whole window)
            self.inc.push(batch.windows[idx[hop], :, -int(round(self.hop_s * self.fs)) :], beds=beds[hop])
        X[idx] = self.inc.features(batch.masks[idx], beds=beds)
        self._remember(beds[~same], ends[~same], X[idx[~same]])
        self.counts["hop"] += int(hop.sum())
        self.counts["same"] += int(same.sum())
        self.counts["restart"] += int(restart.sum())
        for p, e in zip(pids, ends):
            self.last_end[p] = float(e)
            self.last_seen[p] = now

    def continues(self, patient_id: str, end_s: float) -> bool:
        """Whether a window of ``patient_id`` ending at ``end_s`` continues its state: one hop after the last window,
        or the last window again (so scoring it restarts nothing)."""
        b = self.bed.get(patient_id)
        if b is None:
            return False
        hop, same = self._step([patient_id], [end_s], np.array([b]))
        return bool(hop[0] or same[0])

    def score(self, batch: WindowBatch) -> list[ScoreOut]:
        """Scores of the batch's windows, advancing each patient's state."""
        return self._score(batch, self.features)

    def score_aside(self, batch: WindowBatch) -> list[ScoreOut]:
        """Scores of windows as streams that begin at each window's start, on scratch state: no patient's state moves."""
        from models.incremental import IncrementalFeatures

        def features(b: WindowBatch) -> np.ndarray:
            self._check_length(b)
            inc = IncrementalFeatures(len(b), self.fs, self.window_s)
            inc.push(b.windows)
            return inc.features(b.masks)

        return self._score(batch, features)

    def _score(self, batch: WindowBatch, features) -> list[ScoreOut]:
        check_batch(batch.windows, batch.masks, batch.alarm_types)
        t0 = time.perf_counter()
        X = features(batch)
        self.last_features = X  # the verdict lane's bag reads the alarm windows' rows (streams.verdict_blend)
        t1 = time.perf_counter()
        p = check_output(self.name, self.member.proba_from_features(X, batch.alarm_types), len(batch))
        t2 = time.perf_counter()
        timing = {"model_ms": (t2 - t0) * 1e3, "features_ms": (t1 - t0) * 1e3, "batch_size": float(len(batch))}
        return member_scores(p, self.calibrator, self.threshold, batch.alarm_types, self.stage, (self.name,), timing)


def incremental_factory(model_dir=None, threshold=None, capacity: int = 256, window_s: float = 16.0, hop_s: float = 1.0,
                        **_ignored) -> IncrementalScorer:
    from models.incremental_model import load_calibrated

    member, calibrator, profile = load_calibrated(model_dir)
    log.info("scorer: %s (%s, out-of-fold score %s, threshold %.3f, calibration %s)", member.name, profile.get("feature_set"),
             profile.get("cv", {}).get("score"), member.threshold_, calibrator.method)
    return IncrementalScorer(member, calibrator, threshold, capacity, window_s=window_s, hop_s=hop_s)


register_scorer("incremental", incremental_factory)

# the verdict lane's blend of the plan row with this scorer lives in streams.verdict_blend (kept importable from here)
from .verdict_blend import BLEND_CUT, SHIFT_BUDGET_SHARE, SHIFT_ROW_SKIPPED, VerdictBlend  # noqa: E402

__all__ = ["IncrementalScorer", "incremental_factory", "VerdictBlend", "BLEND_CUT", "SHIFT_BUDGET_SHARE", "SHIFT_ROW_SKIPPED"]
