"""Feature models: nested thresholds, the Member contract, verdicts, and the challenge score."""

import pickle

import numpy as np
import pytest

from models.data import alarm_window, load_dataset
from models.errors import InvalidFieldError
from models.evaluate import alarm_features, cross_validate, score_members
from models.feature_models import FeatureModel, make_feature_model
from models.member import Member
from models.metrics import auroc, best_threshold, challenge_score


@pytest.fixture(scope="module")
def dataset(data_dir):
    records, _ = load_dataset(data_dir)
    return records, alarm_features(records)


def test_metrics_by_hand():
    assert challenge_score([1, 1, 0, 0], [1, 0, 0, 1]) == pytest.approx(25.0)
    assert challenge_score([1, 0], [1, 0]) == 100.0
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    t = best_threshold(y, p)
    assert 0.3 < t <= 0.6 and challenge_score(y, p >= t) == 100.0


def test_logreg_cv_on_real_records(dataset):
    records, F = dataset
    res = cross_validate(records, ["features-logreg"], seeds=(0,), features=F)[0]
    s = res.per_seed[0]
    assert s["n"] == len(records)
    assert s["auroc"] > 0.88 and s["score"] > 65  # measured ~0.92 / ~72
    assert set(s["per_type"]) == {r.alarm_type for r in records}
    assert res.oof_prob.shape == (len(records),) and ((res.oof_prob >= 0) & (res.oof_prob <= 1)).all()


def test_fitted_model_is_a_member(dataset):
    records, F = dataset
    y = np.array([r.label for r in records])
    at = [r.alarm_type for r in records]
    m = make_feature_model("features-gbm").fit(F, at, y)
    assert isinstance(m, Member) and 0.0 <= m.threshold_ <= 1.0
    W = np.stack([alarm_window(r) for r in records[:8]])
    M = np.stack([r.mask for r in records[:8]])
    p = m.predict_proba(W, M, at[:8])
    np.testing.assert_allclose(p, m.proba_from_features(F[:8], at[:8]))
    np.testing.assert_allclose(p, [m.predict_proba(W[i : i + 1], M[i : i + 1], at[i : i + 1])[0] for i in range(8)])
    np.testing.assert_allclose(pickle.loads(pickle.dumps(m)).predict_proba(W, M, at[:8]), p)
    assert (m.predict(W, M, at[:8]) == (p >= m.threshold_)).all()
    rows = score_members([m], records[:40])
    assert rows[0]["name"] == "features-gbm" and rows[0]["auroc"] > 0.9  # in-sample, just a smoke figure


def test_bad_arguments_name_the_field(dataset):
    records, F = dataset
    with pytest.raises(InvalidFieldError, match="model must be a known feature model, got 'features-svm'"):
        make_feature_model("features-svm")
    m = FeatureModel("x", "logreg")
    with pytest.raises(InvalidFieldError, match="features must have shape"):
        m.fit(F[:, :10], [r.alarm_type for r in records], [r.label for r in records])
    m.fit(F[:60], [r.alarm_type for r in records[:60]], [r.label for r in records[:60]])
    W = np.stack([alarm_window(r) for r in records[:2]])
    with pytest.raises(InvalidFieldError, match="alarm_types must be a CinC 2015 alarm type"):
        m.predict_proba(W, np.ones((2, 5), bool), ["Asystole", "Hypotension"])
    with pytest.raises(InvalidFieldError, match="windows must be an array of shape"):
        m.predict_proba(W[:, :3], np.ones((2, 3), bool), ["Asystole"] * 2)


def test_fast_forest_path_equals_scikit_learn(data_dir):
    """The committed registry's tree models give bit-identical probabilities through models.fast_forest, and the
    per-call patch is gone after the block."""
    from models.data import alarm_window, list_records, load_dataset
    from models.fast_forest import _flat, _forests, fast_forests
    from models.feature_models import design_matrix
    from models.features import extract_batch
    from models.registry import Registry

    recs, _ = load_dataset(data_dir, [i.name for i in list_records(data_dir)[:40]])
    X = design_matrix(extract_batch(np.stack([alarm_window(r) for r in recs]), np.stack([r.mask for r in recs])),
                      [r.alarm_type for r in recs])
    reg = Registry()
    for name in ("features-vote", "features-extratrees"):
        est = reg.load(name).estimator_
        forests = _forests(est)
        assert len(forests) == 1 and forests[0].n_estimators >= 100
        expected = est.predict_proba(X)
        with fast_forests(est):
            assert "predict_proba" in vars(forests[0])
            got = est.predict_proba(X)
            one_by_one = np.vstack([est.predict_proba(X[i : i + 1]) for i in range(len(X))])
        assert "predict_proba" not in vars(forests[0])
        flat = _flat(forests[0])  # the compiled walk ran: every node of every tree in one set of arrays
        assert flat is not None and len(flat[0]) == forests[0].n_estimators
        assert len(flat[1]) == sum(t.tree_.node_count for t in forests[0].estimators_)
        assert np.array_equal(got, expected)
        assert np.array_equal(one_by_one, np.vstack([est.predict_proba(X[i : i + 1]) for i in range(len(X))]))


def test_fast_predict_gives_scikit_learns_values_for_every_registry_feature_model(data_dir):
    """models.fast_predict: every feature model of the committed registry gives bit-identical probabilities on real
    rows (NaN-bearing ones included, whole batches and one row at a time); the known steps run as plain arithmetic, the
    gradient-boosted trees go to scikit-learn; bad rows are refused as scikit-learn refuses them."""
    from models.data import alarm_window, list_records, load_dataset
    from models.fast_predict import _entry, fast_proba
    from models.feature_models import design_matrix
    from models.features import extract_batch
    from models.registry import Registry

    recs, _ = load_dataset(data_dir, [i.name for i in list_records(data_dir)[:40]])
    X = design_matrix(extract_batch(np.stack([alarm_window(r) for r in recs]), np.stack([r.mask for r in recs])),
                      [r.alarm_type for r in recs])
    assert np.isnan(X).any(axis=1).sum() >= 10  # the imputer's path is exercised
    reg = Registry()
    for name in ("features-logreg", "features-extratrees", "features-vote", "features-gbm", "features-typed"):
        model = reg.load(name)
        est = model.estimator_
        expected = est.predict_proba(X)
        assert np.array_equal(fast_proba(est, X), expected), name
        one = [slice(i, i + 1) for i in range(len(X))]  # row by row (a product of one row may round apart from a batch's)
        assert np.array_equal(np.vstack([fast_proba(est, X[s]) for s in one]), np.vstack([est.predict_proba(X[s]) for s in one])), name
        assert np.array_equal(model.proba_from_features(X[:, :-5], [r.alarm_type for r in recs]), expected[:, 1]), name
        if name in ("features-logreg", "features-extratrees", "features-vote"):
            assert _entry(est) is not None, name  # planned, not handed back to scikit-learn
    assert _entry(reg.load("features-gbm").estimator_) is None
    vote = reg.load("features-vote").estimator_
    bad = X.copy()
    bad[3, 7] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fast_proba(vote, bad)
    for narrow in (X[:, 1:], np.ascontiguousarray(X[:, 1:])):  # scikit-learn's refusal, then the plan's
        with pytest.raises(ValueError, match=f"X has {X.shape[1] - 1} features, but .* is expecting {X.shape[1]}"):
            fast_proba(vote, narrow)
    # what a plan does not compute exactly as scikit-learn goes to scikit-learn: float32, Fortran order, no rows
    for odd in (X.astype(np.float32), np.asfortranarray(X)):
        assert np.array_equal(fast_proba(vote, odd), vote.predict_proba(odd))
    with pytest.raises(ValueError):
        fast_proba(vote, X[:0])
    # a refit in place is seen (the plan is rebuilt from the new fitted arrays)
    from sklearn.base import clone

    lr = clone(reg.load("features-logreg").estimator_).fit(np.nan_to_num(X[:30]), np.arange(30) % 2)
    Z = np.nan_to_num(X)
    before = fast_proba(lr, Z)
    lr.fit(Z[:30], (np.arange(30) // 15) % 2)
    assert np.array_equal(fast_proba(lr, Z), lr.predict_proba(Z)) and not np.array_equal(fast_proba(lr, Z), before)
