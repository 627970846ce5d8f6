"""Calibration on the committed registry's out-of-fold predictions, and the nested ensemble-rule study."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import METHODS, Calibrator, ece, nested_calibrate
from models.errors import InvalidFieldError
from models.metrics import auroc


@pytest.fixture(scope="module")
def table():
    from holmes.compose.table import ZooTable

    return ZooTable.from_registry()[0]


@pytest.fixture(scope="module")
def alarm_types(table):
    from models.data import list_records, resolve_data_dir

    by = {i.name: i.alarm_type for i in list_records(resolve_data_dir())}
    return [by[r] for r in table.records]


@pytest.mark.parametrize("member", ["features-vote", "features-gbm", "cnn-all-w8-d2"])
def test_nested_calibration_keeps_rank_order_and_lowers_ece(table, member):
    p = table.oof[table.names.index(member)]
    cal, methods = nested_calibrate(p, table.y, table.folds)  # fold k's map never saw fold k
    assert len(methods) == 5 and set(methods) <= set(METHODS)
    for k in np.unique(table.folds):  # one strictly increasing map per fold: the fold's ranking is untouched
        f = table.folds == k
        assert auroc(table.y[f], cal[f]) == pytest.approx(auroc(table.y[f], p[f]), abs=1e-12)
    served = Calibrator.fit(methods[0], p, table.y).transform(p)  # one map for all: AUROC unchanged
    assert auroc(table.y, served) == pytest.approx(auroc(table.y, p), abs=1e-12)
    assert abs(auroc(table.y, cal) - auroc(table.y, p)) < 0.005  # pooled over 5 maps: nearly
    assert ece(table.y, cal) < ece(table.y, p) - 0.03
    assert ece(table.y, cal) < 0.07


@pytest.mark.parametrize("method", METHODS)
def test_every_map_is_strictly_increasing_and_round_trips(table, method):
    p = table.oof[table.names.index("features-vote")]
    c = Calibrator.fit(method, p, table.y)
    grid = np.linspace(0, 1, 2001)
    out = c.transform(grid)
    assert np.all((out >= 0) & (out <= 1))
    assert np.all(np.diff(out) > 0) or method == "none" and np.array_equal(out, grid)
    again = Calibrator.from_dict(c.to_dict())
    np.testing.assert_allclose(again.transform(p), c.transform(p), rtol=0, atol=1e-15)


def test_bad_calibration_is_named():
    with pytest.raises(InvalidFieldError, match="calibration.method must be one of the calibration methods, got 'beta'"):
        Calibrator.from_dict({"method": "beta"})
    with pytest.raises(InvalidFieldError, match="calibration.x"):
        Calibrator.from_dict({"method": "isotonic", "x": [0.5, 0.2], "y": [0.1, 0.3]})


def test_ece_of_a_known_case():
    # two bins used: [0.1] x 2 with one true (gap 0.4), [0.9] x 2 with two true (gap 0.1): (2*0.4 + 2*0.1) / 4
    assert ece([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.25)


@pytest.mark.parametrize("rule", ["zoo", "stacking", "greedy"])
def test_a_nested_figure_never_sees_its_own_labels(table, alarm_types, rule):
    """Flip the labels of one outer fold: that fold's probabilities and verdicts do not move (the rule, its
    calibration and its thresholds were chosen without them); the other folds' do change, since fold 0 trains them."""
    from dataclasses import replace

    from holmes.compose.nested import _inner_folds, nested_rule
    from models.data import ALARM_TYPES

    t = np.array([ALARM_TYPES.index(a) for a in alarm_types])
    outer = _inner_folds(np.asarray(table.y), t, 0)
    a = nested_rule(rule, table, alarm_types, 0, outer)
    y2 = np.where(outer == 0, 1 - table.y, table.y)
    b = nested_rule(rule, replace(table, y=y2), alarm_types, 0, outer)
    k = outer == 0
    np.testing.assert_array_equal(a["cal"][k], b["cal"][k])
    np.testing.assert_array_equal(a["pred_global"][k], b["pred_global"][k])
    assert not np.array_equal(a["cal"][~k], b["cal"][~k])


@pytest.mark.parametrize("bad, field", [({"method": "platt", "a": -2.0}, "calibration.a"), ({"method": "platt", "a": float("nan")}, "calibration.a"),
                                        ({"method": "temperature", "a": 1.0, "b": 0.3}, "calibration.b"),
                                        ({"method": "isotonic", "x": [0.1, 0.5], "y": [0.6, 0.2]}, "calibration.y")])
def test_maps_that_would_reorder_windows_are_refused(bad, field):
    with pytest.raises(InvalidFieldError, match=field):
        Calibrator.from_dict(bad)
