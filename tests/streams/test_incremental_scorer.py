"""The incremental scorer: consecutive windows of a patient advance its state by one hop, anything else restarts
it; the committed model serves calibrated probabilities of the features a stream of the same samples gives."""

import numpy as np
import pytest

from incremental_helpers import FS, batch, first_records, stream_features, windows_of
from models.errors import InvalidFieldError
from streams.incremental_scorer import IncrementalScorer, incremental_factory


@pytest.fixture(scope="module")
def records(data_dir):
    return first_records(data_dir)


@pytest.fixture(scope="module")
def scorer_parts():
    s = incremental_factory()
    return s.member, s.calibrator


def test_consecutive_windows_advance_by_one_hop(records, scorer_parts):
    member, cal = scorer_parts
    sc = IncrementalScorer(member, cal, capacity=2)  # 3 patients: the pool grows
    wins = {r.name: windows_of(r, 100.0, 6) for r in records}
    for k in range(6):
        b = batch([(r.name, wins[r.name][k][0], wins[r.name][k][1], r.mask) for r in records])
        X = sc.features(b)
    assert sc.inc.B == 4 and sc.counts == {"hop": 15, "same": 0, "restart": 3}
    for r, row in zip(records, X):  # the last windows: streams that began at the first window's start (84 s)
        np.testing.assert_array_equal(row, stream_features(r, 84.0, 105.0))


def test_gaps_and_repeats_restart_the_patient(records, scorer_parts):
    member, cal = scorer_parts
    sc = IncrementalScorer(member, cal, capacity=4)
    r = records[0]
    w = dict(windows_of(r, 100.0, 10))
    sc.features(batch([(r.name, 100.0, w[100.0], r.mask)]))
    X = sc.features(batch([(r.name, 103.0, w[103.0], r.mask)]))[0]  # two windows missed: a restart
    np.testing.assert_array_equal(X, stream_features(r, 87.0, 103.0))
    X = sc.features(batch([(r.name, 103.0, w[103.0], r.mask)]))[0]  # the same window again: the state as it is
    np.testing.assert_array_equal(X, stream_features(r, 87.0, 103.0))
    X = sc.features(batch([(r.name, 102.0, w[102.0], r.mask)]))[0]  # an older one: a restart
    np.testing.assert_array_equal(X, stream_features(r, 86.0, 102.0))
    sc.features(batch([(r.name, 103.0, w[103.0], r.mask)]))  # one hop on
    # two windows of one patient in one batch, given newest first: featurized in order of their ends
    X = sc.features(batch([(r.name, 105.0, w[105.0], r.mask), (r.name, 104.0, w[104.0], r.mask)]))
    np.testing.assert_array_equal(X[1], stream_features(r, 86.0, 104.0))
    np.testing.assert_array_equal(X[0], stream_features(r, 86.0, 105.0))
    assert sc.counts == {"hop": 3, "same": 1, "restart": 3}


def test_scores_are_the_calibrated_model_on_those_features(records, scorer_parts):
    member, cal = scorer_parts
    sc = IncrementalScorer(member, cal)
    r = records[1]
    items = [(r.name, e, w, r.mask) for e, w in windows_of(r, 120.0, 3)]
    for it in items:
        out = sc.score(batch([it]))
    p = member.proba_from_features(stream_features(r, 104.0, 122.0)[None], ["Ventricular_Tachycardia"])
    assert out[0].probability == pytest.approx(float(cal.transform(p)[0]), abs=1e-12)
    assert out[0].positive == bool(p[0] >= sc.threshold_for("Ventricular_Tachycardia"))
    assert out[0].models == ("features-typed-inc",) and 0.0 <= out[0].probability <= 1.0


def test_a_window_of_another_length_is_a_typed_error(records, scorer_parts):
    member, cal = scorer_parts
    sc = IncrementalScorer(member, cal)
    r = records[0]
    end, w = windows_of(r, 100.0, 1)[0]
    with pytest.raises(InvalidFieldError) as e:
        sc.features(batch([(r.name, end, w[:, :-10], r.mask)]))
    assert e.value.field == "windows" and e.value.value == 16 * FS - 10
