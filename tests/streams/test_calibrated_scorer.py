"""The stream's ``features`` scorer publishes calibrated probabilities with the member's own verdicts."""

from __future__ import annotations

import warnings

import numpy as np

from models.data import load_dataset, resolve_data_dir
from models.zoo_eval import alarm_batch
from streams.scorer import WindowBatch, make_scorer


def test_features_scorer_publishes_calibrated_probabilities():
    import streams.feature_scorer as fs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs, _ = load_dataset(resolve_data_dir())
    recs = [r for r in recs if r.label is not None][::10]
    w, m, a = alarm_batch(recs, 16.0)
    n = len(recs)
    batch = WindowBatch([r.name for r in recs], np.full(n, 300.0), w, m, a, np.ones(n, bool), np.zeros(n), np.ones(n))
    scorer = make_scorer("features")
    member, profile = fs.best_registry_member()
    assert scorer.calibrator is not None and scorer.calibrator.method != "none"
    out = scorer.score(batch)
    raw = member.predict_proba(w, m, a)
    cal = fs.profile_calibrator(profile).transform(raw)
    np.testing.assert_allclose([o.probability for o in out], cal, rtol=0, atol=1e-12)
    assert [o.positive for o in out] == [bool(p >= member.threshold_) for p in raw]  # verdicts unchanged
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(cal[order]) >= 0)  # same ranking
    assert scorer.calibrator == fs.profile_calibrator(profile)  # the map fitted on the member's registry OOF predictions
