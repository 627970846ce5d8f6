"""One patient's window that breaks the scorer degrades that window alone; the window that used to break it
(a flat first half followed by signal) now scores."""

from __future__ import annotations

import warnings

import numpy as np

from models.data import load_record, resolve_data_dir, window
import streams.feature_scorer  # noqa: F401 - registers the "features" scorer
from streams.scorer import ScoreOut, WindowBatch, make_scorer, score_isolating


def _batch(ids, windows, masks, types):
    n = len(ids)
    return WindowBatch(list(ids), np.arange(n, dtype=float), windows, masks, list(types), np.zeros(n, bool), np.zeros(n), np.ones(n))


class _Picky:
    """Fails any batch holding the patient 'bad' (a stand-in for a model that rejects one window)."""

    name = "picky"

    def score(self, batch):
        if "bad" in batch.patient_ids:
            raise ValueError("Input X contains infinity")
        return [ScoreOut(0.25, False) for _ in batch.patient_ids]


def test_a_bad_window_is_degraded_alone():
    ids = [f"p{i}" for i in range(16)]
    ids[11] = "bad"
    b = _batch(ids, np.zeros((16, 5, 10), np.float32), np.ones((16, 5), bool), ["Asystole"] * 16)
    failures = []
    out = score_isolating(_Picky(), b, lambda e, n: failures.append(n))
    assert [o.probability for o in out] == [0.25] * 11 + [None] + [0.25] * 4
    assert out[11].degraded_reason == "scorer failed: ValueError: Input X contains infinity"
    assert failures == [16, 8, 4, 2, 1]  # one halving path down to the bad window


def test_the_window_that_overflowed_float32_now_scores():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = load_record(resolve_data_dir(), "a363l")
    w = np.stack([window(rec, e, 16.0) for e in (292.0, 293.0, 300.0)]).astype(np.float32)
    m = np.repeat(rec.mask[None], 3, 0)
    out = make_scorer("features").score(_batch(["a", "b", "c"], w, m, [rec.alarm_type] * 3))
    assert all(o.degraded_reason is None and 0.0 <= o.probability <= 1.0 for o in out)


class _Down:
    """A scorer whose backend is unreachable: every call fails, whatever the windows."""

    name = "down"

    def __init__(self):
        self.calls = 0

    def score(self, batch):
        self.calls += 1
        raise ConnectionError("service unreachable")


def test_a_scorer_outage_marks_the_batch_at_once_without_retrying_halves():
    b = _batch([f"p{i}" for i in range(128)], np.zeros((128, 5, 10), np.float32), np.ones((128, 5), bool), ["Asystole"] * 128)
    down = _Down()
    out = score_isolating(down, b)
    assert down.calls == 1 and all(o.probability is None for o in out)
    assert out[0].degraded_reason == "scorer failed: ConnectionError: service unreachable"


class _AllBad(_Down):
    def score(self, batch):
        self.calls += 1
        raise ValueError("every window is bad")


def test_splitting_is_bounded_when_every_window_fails():
    b = _batch([f"p{i}" for i in range(128)], np.zeros((128, 5, 10), np.float32), np.ones((128, 5), bool), ["Asystole"] * 128)
    bad = _AllBad()
    out = score_isolating(bad, b)
    assert len(out) == 128 and all(o.probability is None for o in out)
    assert bad.calls <= 4 * 8 + 4  # 4 (log2(n) + 1) + 4, not 2n - 1 = 255
