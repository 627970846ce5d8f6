"""Scoring one tick's windows over several processes gives the same probabilities as one process, with the
registry's trained feature model on real windows; a killed worker costs nothing but a slower tick.

The member's own results move in the last bits with the batch a window shares (BLAS blocking), so parts are
compared with rtol 1e-12, and decisions exactly."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from models.data import alarm_window
from models.errors import InvalidFieldError
from streams.feature_scorer import best_registry_member
from streams.parallel import ParallelPredict
from streams.scorer import MemberScorer, WindowBatch


def same(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def feature_member():
    found = best_registry_member()
    assert found is not None, "the committed registry (artifacts/registry) has no feature model"
    return found[0]


@pytest.fixture(scope="module")
def real_batch(records):
    recs = records[:37]  # odd size: parts of unequal length
    return (np.stack([alarm_window(r) for r in recs]).astype(np.float32), np.stack([r.mask for r in recs]),
            [r.alarm_type for r in recs])


@pytest.fixture(scope="module")
def pool(feature_member):
    p = ParallelPredict(feature_member, workers=3, min_batch=4).start()
    yield p
    p.close()


def test_parts_over_processes_equal_one_process(feature_member, real_batch, pool):
    w, m, a = real_batch
    expected = feature_member.predict_proba(w, m, a)
    got = pool(w, m, a)
    assert got.shape == (len(w),)
    same(got, expected)
    assert pool.crashes == 0
    small = pool(w[:3], m[:3], a[:3])  # below min_batch: scored here
    same(small, expected[:3])


def test_killed_worker_part_is_scored_here_and_pool_restarts(feature_member, real_batch, pool):
    w, m, a = real_batch
    expected = feature_member.predict_proba(w, m, a)
    pool(w, m, a)
    for pid in list(pool._executor()._processes):
        os.kill(pid, signal.SIGKILL)
    same(pool(w, m, a), expected)
    assert pool.crashes == 1
    same(pool(w, m, a), expected)  # a fresh pool
    assert pool.crashes == 1


def test_member_scorer_with_workers_scores_like_without(feature_member, real_batch):
    w, m, a = real_batch
    n = len(w)
    batch = WindowBatch([f"p{i}" for i in range(n)], np.arange(n, dtype=float), w, m, a, np.zeros(n, bool),
                        np.zeros(n), np.ones(n))
    one = MemberScorer(feature_member).score(batch)
    two = MemberScorer(feature_member, workers=2)
    pool = two.predict
    try:
        got = two.score(batch)
    finally:
        two.close()
    same([s.probability for s in got], [s.probability for s in one])
    assert [s.positive for s in got] == [s.positive for s in one]
    assert pool._pool is None and two.predict == feature_member.predict_proba  # workers stopped, scores here now
    same([s.probability for s in two.score(batch)], [s.probability for s in one])


@pytest.mark.parametrize("workers", [0, -1, 65, 1.5, True])
def test_bad_worker_count_names_the_field(feature_member, workers):
    with pytest.raises(InvalidFieldError, match="workers"):
        ParallelPredict(feature_member, workers=workers)
