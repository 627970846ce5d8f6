"""Honest CV scoring (fold thresholds chosen on other folds) and held-out prediction with ensemble rows."""

from __future__ import annotations

import numpy as np

from models.metrics import best_threshold, challenge_score
from models.zoo_eval import CNN_ENSEMBLE, cv_summary, predict_records


class TestCVSummary:
    def test_threshold_of_each_fold_comes_from_the_other_folds(self):
        rng = np.random.default_rng(1)
        y = rng.integers(0, 2, 200)
        p = np.clip(0.5 * y + rng.normal(0.25, 0.25, 200), 0, 1)
        folds = np.arange(200) % 5
        s = cv_summary(y, p, folds)
        pred = np.zeros(200, int)
        for k in range(5):
            t = best_threshold(y[folds != k], p[folds != k])
            assert s["fold_thresholds"][k] == round(t, 6)
            pred[folds == k] = p[folds == k] >= t
        assert s["score"] == round(challenge_score(y, pred), 4)
        assert s["threshold"] == round(best_threshold(y, p), 6)
        assert 0.5 < s["auroc"] < 1.0


class TestPredictRecords:
    def test_members_and_ensemble_rows(self, registry, records):
        members = registry.load_all(kinds=["cnn"])[:3]
        probs = predict_records(members, records)
        assert set(probs) == {m.name for m in members} | {CNN_ENSEMBLE}
        for name, p in probs.items():
            assert p.shape == (len(records),) and np.all((p >= 0) & (p <= 1))
        np.testing.assert_allclose(probs[CNN_ENSEMBLE], np.mean([probs[m.name] for m in members], axis=0))
        # the same as calling the member on the alarm windows directly
        from models.zoo_eval import alarm_batch

        w, m, t = alarm_batch(records)
        np.testing.assert_allclose(probs[members[0].name], members[0].predict_proba(w, m, t), atol=1e-6)
