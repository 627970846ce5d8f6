"""Forest probabilities without scikit-learn's per-tree dispatch cost, same values.

``ForestClassifier.predict_proba`` hands every tree to joblib (config context, warning filters, a lock):
about 30 us per tree, so a 400-tree forest costs ~15 ms per call whatever the batch size, which dominates
scoring at the batch sizes of a stream tick. ``fast_forests(estimator)`` lets the forests inside
``estimator`` (directly, in a Pipeline, in a VotingClassifier, in per-type heads) sum their trees without it:
with numba, every tree of a forest is flattened once into node arrays and one compiled call walks each row
down each tree (~13 ms of per-tree Python calls per 6-forest typed model call become ~0); without numba, a
plain loop of ``predict_proba(X, check_input=False)`` per tree. Either way the same leaf probabilities are
added in the same order into the same float64 array and divided by the tree count as scikit-learn does with
one job, so the result is bit-identical.

    with fast_forests(model):
        p = model.predict_proba(X)
"""

from __future__ import annotations

import importlib.util
import threading
from contextlib import contextmanager

import numpy as np


def _forest_proba(forest, X):
    X = forest._validate_X_predict(X)
    out = np.zeros((X.shape[0], forest.n_classes_), dtype=np.float64)
    flat = _flat(forest)
    if flat is not None:
        _kernel()(np.ascontiguousarray(X), *flat, out)
    else:
        for tree in forest.estimators_:
            out += tree.predict_proba(X, check_input=False)
    out /= len(forest.estimators_)
    return out


def _traverse(X, roots, left, right, feature, threshold, missing_left, p0, p1, out):
    """``out[i] += (p0, p1)`` of the leaf each row reaches in each tree, trees in order (scikit-learn's rule: a
    float32 value <= the float64 threshold goes left, NaN goes where the split sent missing values)."""
    for t in range(roots.shape[0]):
        root = roots[t]
        for i in range(X.shape[0]):
            node = root
            while left[node] != -1:
                x = X[i, feature[node]]
                if x != x:
                    node = left[node] if missing_left[node] else right[node]
                elif x <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            out[i, 0] += p0[node]
            out[i, 1] += p1[node]


_KERNEL = None
_FLAT: dict[int, tuple] = {}  # id(forest) -> (forest, arrays, its trees list): the forest is held so its id is not reused


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        _KERNEL = njit(cache=True, nogil=True)(_traverse)
    return _KERNEL


def warm() -> None:
    """Load the compiled walk now (numba's import and its on-disk cache: ~1.5 s on 2 cores in a new process), so the
    first scored batch of a stream does not pay it inside a deadline. A no-op without numba."""
    if importlib.util.find_spec("numba") is None:  # pragma: no cover
        return
    leaf = np.array([-1], dtype=np.int64)
    _kernel()(np.zeros((1, 1), dtype=np.float32), np.zeros(1, dtype=np.int64), leaf, leaf, np.zeros(1, dtype=np.int64),
              np.zeros(1), np.zeros(1, dtype=np.bool_), np.ones(1), np.zeros(1), np.zeros((1, 2)))


def _flat(forest):
    """Every tree of a two-class forest in one set of node arrays (children as absolute indices, leaf
    probabilities normalized as ``DecisionTreeClassifier.predict_proba`` does), built once; None without numba
    or for other forests (the per-tree loop then runs)."""
    hit = _FLAT.get(id(forest))
    if hit is not None and hit[0] is forest and hit[2] is forest.estimators_:  # not refitted since (a refit makes a new list)
        return hit[1]
    if importlib.util.find_spec("numba") is None:  # pragma: no cover
        return None
    if forest.n_classes_ != 2 or getattr(forest, "n_outputs_", 1) != 1:
        return None
    roots, parts, base = [], [], 0
    for tree in forest.estimators_:
        tr = tree.tree_
        left, right = tr.children_left.astype(np.int64), tr.children_right.astype(np.int64)
        leaf = left == -1
        v = tr.value[:, 0, :2].astype(np.float64)
        norm = v.sum(axis=1)
        norm[norm == 0.0] = 1.0
        v = v / norm[:, None]
        missing = getattr(tr, "missing_go_to_left", np.zeros(tr.node_count, dtype=np.uint8))
        parts.append((np.where(leaf, -1, left + base), np.where(leaf, -1, right + base), tr.feature.astype(np.int64),
                      tr.threshold.astype(np.float64), np.asarray(missing, dtype=np.bool_), v[:, 0].copy(), v[:, 1].copy()))
        roots.append(base)
        base += tr.node_count
    flat = (np.array(roots, dtype=np.int64),) + tuple(np.ascontiguousarray(np.concatenate(c)) for c in zip(*parts))
    _FLAT[id(forest)] = (forest, flat, forest.estimators_)
    return flat


def _forests(est) -> list:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(est, (ExtraTreesClassifier, RandomForestClassifier)):
        # one output only; several jobs would change the summation order, so leave those to scikit-learn
        return [est] if getattr(est, "n_outputs_", 1) == 1 and est.n_jobs in (None, 1) else []
    if isinstance(est, Pipeline):
        return [f for _, step in est.steps for f in _forests(step)]
    if isinstance(est, VotingClassifier):
        return [f for sub in getattr(est, "estimators_", []) for f in _forests(sub)]
    if hasattr(est, "sub_estimators"):  # models.typed_heads.TypedHeads
        return [f for sub in est.sub_estimators() for f in _forests(sub)]
    return []


_LOCK = threading.Lock()
_USERS: dict[int, int] = {}  # id(forest) -> blocks inside fast_forests now (threads may overlap)


@contextmanager
def fast_forests(estimator):
    """Within the block, forests inside ``estimator`` predict through ``_forest_proba``. Thread-safe: a forest stays
    patched until the last of the blocks that use it (in any thread) ends."""
    forests = _forests(estimator)
    with _LOCK:
        for forest in forests:
            k = id(forest)
            if _USERS.get(k, 0) == 0 and "predict_proba" not in vars(forest):
                forest.predict_proba = lambda X, _f=forest: _forest_proba(_f, X)
                _USERS[k] = 0
            if k in _USERS:
                _USERS[k] += 1
    try:
        yield estimator
    finally:
        with _LOCK:
            for forest in forests:
                k = id(forest)
                if k in _USERS:
                    _USERS[k] -= 1
                    if _USERS[k] == 0:
                        del _USERS[k]
                        vars(forest).pop("predict_proba", None)
