"""Running the fitted cascade on raw windows: cheap rungs in process, the costly rung through an injected
scorer (the Ray Serve service in the stream, an in-process ensemble offline).

``LiveRunner`` computes each feature extractor once per window, times every call, and charges each window
its share: every call (an extractor on the windows that need it, a model, the service) runs once on its
windows as a batch and is split evenly over them. So the windows' costs add up exactly to the measured time of all calls
(``calls``).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from models.features import extract_batch
from streams.scorer import WindowBatch, check_scores

from .lead import quick_features_batch

EXTRACTORS = {"quick_features": quick_features_batch, "features": extract_batch}  # batch [B, 5, n] -> rows [B, F]


def sub_batch(batch: WindowBatch, idx: np.ndarray, features: np.ndarray | None = None) -> WindowBatch:
    return WindowBatch([batch.patient_ids[i] for i in idx], np.asarray(batch.window_end_s)[idx], batch.windows[idx],
                       batch.masks[idx], [batch.alarm_types[i] for i in idx], np.asarray(batch.is_alarm)[idx],
                       np.asarray(batch.sample_unix_s)[idx], np.asarray(batch.deadline_unix_s)[idx], features)


def batch_of(windows, masks, alarm_types) -> WindowBatch:
    """A WindowBatch for offline use (held-out folders, tests): no patients, no deadlines."""
    n = len(windows)
    return WindowBatch([f"w{i}" for i in range(n)], np.zeros(n), np.asarray(windows, dtype=np.float32), np.asarray(masks, dtype=bool),
                       list(alarm_types), np.ones(n, dtype=bool), np.full(n, time.time()), np.full(n, np.inf))


class LiveRunner:
    """``runner.rung(s, r, idx)`` for ``Cascade.run`` on a WindowBatch."""

    def __init__(self, stages, models: dict, costly, batch: WindowBatch, costly_macs: float = 0.0):
        self.stages, self.models, self.costly, self.batch = stages, models, costly, batch
        self.costly_macs = costly_macs
        n = len(batch)
        self.rows: dict[str, dict[int, np.ndarray]] = {k: {} for k in EXTRACTORS}
        self.costly_prob: dict[int, float] = {}
        self.costly_models: dict[int, tuple[str, ...]] = {}
        self.calls: list[dict] = []  # {"component", "windows", "ms"}
        self.ms = np.zeros(n)

    def _charge(self, component: str, idx, ms: float) -> np.ndarray:
        self.calls.append({"component": component, "windows": len(idx), "ms": ms})
        share = np.full(len(idx), ms / max(1, len(idx)))
        return share

    def _features(self, kind: str, idx) -> tuple[np.ndarray, np.ndarray]:
        fn, cache = EXTRACTORS[kind], self.rows[kind]
        ms = np.zeros(len(idx))
        todo = np.array([i for i in idx if i not in cache], dtype=int)
        if len(todo):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                t0 = time.perf_counter()
                rows = fn(self.batch.windows[todo], self.batch.masks[todo])
                share = self._charge(kind, todo, (time.perf_counter() - t0) * 1e3)
            pos = {i: j for j, i in enumerate(idx)}
            for k, i in enumerate(todo):
                cache[int(i)] = rows[k]
                ms[pos[i]] = share[k]
        return np.stack([cache[int(i)] for i in idx]), ms

    def rung(self, s: int, r: int, idx: np.ndarray):
        rung = self.stages[s].rungs[r]
        idx = np.asarray(idx)
        types = [self.batch.alarm_types[i] for i in idx]
        if rung.components == ("ensemble",):
            todo = np.array([i for i in idx if i not in self.costly_prob], dtype=int)
            ms = np.zeros(len(idx))
            macs = np.zeros(len(idx))
            if len(todo):
                t0 = time.perf_counter()
                feats = self.rows["features"]  # rows the feature rung extracted go along: the service does not redo them
                given = np.stack([feats[int(i)] for i in todo]) if all(int(i) in feats for i in todo) else None
                outs = check_scores(getattr(self.costly, "name", "costly"), self.costly.score(sub_batch(self.batch, todo, given)), len(todo))
                share = self._charge("ensemble", todo, (time.perf_counter() - t0) * 1e3)
                pos = {i: j for j, i in enumerate(idx)}
                for k, (i, o) in enumerate(zip(todo, outs)):
                    self.costly_prob[i] = float(o.probability) if o.probability is not None else 0.5
                    self.costly_models[i] = tuple(o.models)
                    ms[pos[i]] = share[k]
                    macs[pos[i]] = self.costly_macs
            return np.array([self.costly_prob[i] for i in idx]), ms, macs
        kind, model_name = rung.components
        X, ms = self._features(kind, idx)
        model = self.models[model_name]
        t0 = time.perf_counter()
        p = model.proba_from_features(X, types)
        ms = ms + self._charge(model_name, idx, (time.perf_counter() - t0) * 1e3)
        return np.asarray(p, dtype=np.float64), ms, np.zeros(len(idx))
