"""Forest probabilities without scikit-learn's per-tree dispatch cost, same values.

``ForestClassifier.predict_proba`` hands every tree to joblib (config context, warning filters, a lock):
about 30 us per tree, so a 400-tree forest costs ~15 ms per call whatever the batch size, which dominates
scoring at the batch sizes of a stream tick. ``fast_forests(estimator)`` lets the forests inside
``estimator`` (directly, in a Pipeline, in a VotingClassifier, in per-type heads) sum their trees in a plain loop instead:
the same trees, ``predict_proba(X, check_input=False)`` each, added in the same order into the same
float64 array and divided by the tree count as scikit-learn does with one job, so the result is
bit-identical.

    with fast_forests(model):
        p = model.predict_proba(X)
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np


def _forest_proba(forest, X):
    X = forest._validate_X_predict(X)
    out = np.zeros((X.shape[0], forest.n_classes_), dtype=np.float64)
    for tree in forest.estimators_:
        out += tree.predict_proba(X, check_input=False)
    out /= len(forest.estimators_)
    return out


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
