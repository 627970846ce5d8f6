"""Per-alarm-type heads (models.typed_heads): real records, calibration per type, typed errors, fast forests."""

import pickle

import numpy as np
import pytest

from models.data import ALARM_TYPES, load_dataset
from models.errors import InvalidFieldError
from models.evaluate import alarm_features
from models.fast_forest import _forests, fast_forests
from models.feature_models import design_matrix, make_feature_model
from models.typed_heads import TypedHeads, _logit, types_of


@pytest.fixture(scope="module")
def design(data_dir):
    records, _ = load_dataset(data_dir)
    F = alarm_features(records)
    types = [r.alarm_type for r in records]
    return design_matrix(F, types), np.array([int(r.label) for r in records]), np.array(types)


@pytest.fixture(scope="module")
def fitted(design):
    X, y, _ = design
    return TypedHeads(seed=0).fit(X[:400], y[:400])


def test_one_head_per_type_and_a_calibrated_map_each(design, fitted):
    X, y, T = design
    assert sorted(fitted.heads_) == list(range(len(ALARM_TYPES)))  # every type has >= 12 rows and both classes
    assert all(a > 0 for a, _ in fitted.maps_.values())  # every Platt map is increasing
    p = fitted.predict_proba(X[400:])
    assert p.shape == (len(X) - 400, 2) and np.allclose(p.sum(1), 1.0) and ((p > 0) & (p < 1)).all()
    # within an alarm type the map is monotone: the calibrated order is the mixed order (AUROC per type kept)
    t = types_of(X[400:])
    raw = _logit(fitted._mixed(fitted.global_, fitted.heads_, X[400:], t))
    for k in np.unique(t):
        m = t == k
        order = np.argsort(raw[m], kind="stable")
        assert np.all(np.diff(p[m, 1][order]) >= -1e-15)
    # calibration in the large on records the model never saw: the mean published probability is the true rate
    assert abs(p[:, 1].mean() - y[400:].mean()) < 0.1


def test_a_type_with_one_class_has_no_head_and_uses_the_global_map(design):
    X, y, T = design
    keep = (T != "Ventricular_Flutter_Fib") | (y == 0)  # VF/flutter with false alarms only
    model = TypedHeads(seed=0, calib_splits=3).fit(X[keep], y[keep])
    vf = ALARM_TYPES.index("Ventricular_Flutter_Fib")
    assert vf not in model.heads_ and len(model.heads_) == len(ALARM_TYPES) - 1
    others = [model.maps_[k] for k in model.heads_]
    assert model.maps_[vf] not in others  # the fallback map is fitted on all rows, not borrowed from a type
    p = model.predict_proba(X[T == "Ventricular_Flutter_Fib"])[:, 1]
    assert np.isfinite(p).all() and p.std() > 0  # the global model still ranks these windows


def test_forests_inside_the_heads_predict_bit_identically_through_fast_forests(design, fitted):
    X, _, _ = design
    forests = _forests(fitted)
    assert len(forests) == 1 + len(fitted.heads_)  # the global vote's forest and one per head
    expected = fitted.predict_proba(X[:64])
    with fast_forests(fitted):
        assert all("predict_proba" in vars(f) for f in forests)
        got = fitted.predict_proba(X[:64])
    assert np.array_equal(got, expected)
    assert np.array_equal(pickle.loads(pickle.dumps(fitted)).predict_proba(X[:64]), expected)


def test_fast_predict_gives_the_heads_values_with_its_arithmetic(design, fitted):
    """models.fast_predict.fast_proba on typed heads: the heads' own probabilities, bit for bit, NaN rows included."""
    from models.fast_predict import _entry, fast_proba

    X, _, _ = design
    assert np.isnan(X[:200]).any()
    assert np.array_equal(fast_proba(fitted, X[:200]), fitted.predict_proba(X[:200]))
    assert all(_entry(m) is not None for m in fitted.sub_estimators())  # each part planned as plain arithmetic


def test_bad_settings_and_rows_name_the_field(design):
    X, y, _ = design
    with pytest.raises(InvalidFieldError, match=r"mix must be within \[0, 1\] or 'auto' .*, got 1.5"):
        TypedHeads(mix=1.5)
    with pytest.raises(InvalidFieldError, match=r"mix must be within .*, got 'half'"):
        TypedHeads(mix="half")
    with pytest.raises(InvalidFieldError, match="base must be a plain feature-model estimator"):
        TypedHeads(base="typed")
    with pytest.raises(InvalidFieldError, match="X must end with a one-hot block of the 5 alarm types"):
        TypedHeads().fit(X[:50, :-5], y[:50])


def test_features_typed_is_a_feature_model(design):
    m = make_feature_model("features-typed")
    assert m.estimator == "typed" and m.kind == "features"


def test_auto_mix_is_chosen_per_type_on_inner_folds_and_fixed_mix_is_unchanged(design, fitted):
    """mix="auto" picks each type's head/global weight from MIX_GRID on the inner out-of-fold rows; a fixed mix of 0.5
    predicts exactly as the committed models do (which carry no per-type mixes)."""
    from models.typed_heads import MIX_GRID

    X, y, _ = design
    auto = TypedHeads(seed=0, mix="auto").fit(X[:400], y[:400])
    assert set(auto.mixes_) == set(range(len(ALARM_TYPES))) and all(w in MIX_GRID for w in auto.mixes_.values())
    assert sorted(auto.heads_) == sorted(fitted.heads_)  # same heads: the mix changes only how they are combined
    p = auto.predict_proba(X[400:])[:, 1]
    assert np.isfinite(p).all() and abs(p.mean() - y[400:].mean()) < 0.1
    assert fitted.mixes_ == {k: 0.5 for k in range(len(ALARM_TYPES))}
    old = pickle.loads(pickle.dumps(fitted))
    del old.mixes_  # a model fitted before per-type mixes existed
    assert np.array_equal(old.predict_proba(X[400:]), fitted.predict_proba(X[400:]))


def test_groups_keep_a_records_windows_in_one_calibration_fold(design, fitted):
    """Several windows of one record (e.g. the alarm window and the one 1 s before it) train one model; with ``groups``
    they share an inner calibration fold, so no record's copy is scored by a model that saw another copy."""
    X, y, _ = design
    t = types_of(X[:400])
    one_each = TypedHeads(seed=0)
    assert np.array_equal(one_each._calib_folds(t, y[:400], np.arange(400)), one_each._calib_folds(t, y[:400], None))
    same = TypedHeads(seed=0).fit(X[:400], y[:400], groups=np.arange(400))  # a group per row: as with no groups
    assert np.array_equal(same.predict_proba(X[400:]), fitted.predict_proba(X[400:]))
    X2, y2, g2 = np.vstack([X[:400], X[:400]]), np.concatenate([y[:400], y[:400]]), np.concatenate([np.arange(400)] * 2)
    folds = one_each._calib_folds(types_of(X2), y2, g2)
    assert np.array_equal(folds[:400], folds[400:]) and len(np.unique(folds)) == one_each.calib_splits
    loose = one_each._calib_folds(types_of(X2), y2, None)  # without groups, most copies land in another fold
    assert (loose[:400] != loose[400:]).mean() > 0.5
    p = TypedHeads(seed=0).fit(X2, y2, groups=g2).predict_proba(X[400:])[:, 1]
    assert np.isfinite(p).all() and abs(p.mean() - y[400:].mean()) < 0.1
    bad = g2.copy()
    bad[400 + np.argmax(y[:400] != y[0])] = 0  # a row of another label put in group 0
    with pytest.raises(InvalidFieldError, match=r"groups must keep one alarm type and one label per group \(the first group that does not\), got 0"):
        TypedHeads(seed=0).fit(X2, y2, groups=bad)
    with pytest.raises(InvalidFieldError, match=r"groups must give one group per row \(shape \(800,\)\), got \(400,\)"):
        TypedHeads(seed=0).fit(X2, y2, groups=np.arange(400))


def test_lead_extremes_do_not_depend_on_which_lead_comes_first():
    from models.feature_models import _ECG1, _ECG2, with_lead_extremes

    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 104))
    X[0, _ECG1[3]] = np.nan  # one lead missing: both extremes are the other lead's value
    swapped = X.copy()
    swapped[:, _ECG1], swapped[:, _ECG2] = X[:, _ECG2], X[:, _ECG1]
    a, b = with_lead_extremes(X), with_lead_extremes(swapped)
    assert a.shape == (6, 104 + 2 * 26)
    np.testing.assert_array_equal(a[:, 104:], b[:, 104:])
    assert a[0, 104 + 3] == a[0, 104 + 26 + 3] == X[0, _ECG2[3]]
    assert np.all(a[1:, 104:130] <= a[1:, 130:])


def test_the_screened_bases_are_what_their_names_say():
    from models.feature_models import _estimator

    assert [name for name, _ in _estimator("vote3", 0).estimators] == ["logreg", "extratrees", "gbm"]
    sym = _estimator("vote-sym", 0)
    assert sym.steps[0][1].func.__name__ == "with_lead_extremes" and sym.steps[-1][0] == "votingclassifier"
    for name, base in (("features-typed-vote3", "vote3"), ("features-typed-sym", "vote-sym")):
        est = _estimator(make_feature_model(name).estimator, 0)
        assert isinstance(est, TypedHeads) and est.base == base
    with pytest.raises(InvalidFieldError, match="base must be a plain feature-model estimator"):
        TypedHeads(base="typed-sym")
