"""The quick rung's features on real windows, the shared-work ensemble, and refusing cascades this version
cannot run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models.errors import HolmesInputError, InvalidFieldError
from models.zoo_eval import alarm_batch


@pytest.fixture(scope="module")
def batch(records):
    return alarm_batch(records[::5], 16.0)  # 60 real alarm windows


class TestQuickFeatures:
    def test_rates_agree_with_the_full_features(self, batch):
        """Heart rate from the decimated ECG lead and pulse rate from the decimated pulse agree with the full
        250 Hz features on the same records where those see a clean, steady rhythm."""
        from models.features import FEATURE_NAMES, extract_batch
        from unfold.lead import LEAD_FEATURES, quick_features_batch

        w, m, _ = batch
        q, f = quick_features_batch(w, m), extract_batch(w, m)
        assert q.shape == (len(w), len(LEAD_FEATURES))
        col = lambda name: f[:, FEATURE_NAMES.index(name)]  # noqa: E731
        clean = (col("ECG1_last_rr_cv") < 0.1) & (col("ECG1_nan_frac") == 0) & (col("ECG1_last_n_beats") >= 6)
        assert clean.sum() >= 10
        hr_q, hr_f = q[clean, LEAD_FEATURES.index("hr_bpm")], col("ECG1_last_hr_bpm")[clean]
        assert np.median(np.abs(hr_q - hr_f)) < 3.0
        abp = (q[:, LEAD_FEATURES.index("pulse_source")] == 1) & (col("ABP_last_rr_cv") < 0.1) & (col("ABP_last_n_beats") >= 6)
        assert abp.sum() >= 5
        assert np.median(np.abs(q[abp, LEAD_FEATURES.index("pulse_hr_bpm")] - col("ABP_last_hr_bpm")[abp])) < 3.0

    def test_rows_do_not_depend_on_the_batch(self, batch):
        from unfold.lead import quick_features, quick_features_batch

        w, m, _ = batch
        whole = quick_features_batch(w, m)
        for i in (0, 7, 33):  # equal up to the summation order of vectorised reductions
            np.testing.assert_allclose(quick_features(w[i], m[i]), whole[i], rtol=1e-12, atol=1e-15)

    def test_absent_signals_give_nan_not_errors(self, batch):
        from unfold.lead import ECG_FEATURES, LEAD_FEATURES, PULSE_FEATURES, quick_features_batch

        w, m, _ = batch
        w, m = w[:4].copy(), m[:4].copy()
        m[0, 2:4] = False  # no pulse slot
        w[1, 0:2] = np.nan  # both ECG leads NaN (mask still True)
        m[2, 0] = False  # ECG1 absent: ECG2 is read
        q = quick_features_batch(w, m)
        pulse = slice(len(ECG_FEATURES), len(ECG_FEATURES) + len(PULSE_FEATURES))
        assert np.all(np.isnan(q[0, pulse])) and q[0, LEAD_FEATURES.index("pulse_source")] == 0
        assert np.all(np.isnan(q[1, : len(ECG_FEATURES)]))
        assert np.isfinite(q[2, LEAD_FEATURES.index("n_beats")])

    def test_bad_shapes_are_named(self, batch):
        from unfold.lead import quick_features_batch

        w, m, _ = batch
        with pytest.raises(InvalidFieldError, match="windows"):
            quick_features_batch(w[:, :4], m[:, :4])
        with pytest.raises(InvalidFieldError, match="8 s"):
            quick_features_batch(w[:, :, :1000], m)

    def test_model_refuses_rows_of_another_feature_set(self, batch):
        from unfold.lead import LeadModel

        w, m, a = batch
        y = np.arange(len(w)) % 2
        with pytest.raises(InvalidFieldError, match="features"):
            LeadModel().fit(np.zeros((len(w), 12)), a, y)
        model = LeadModel().fit(np.random.default_rng(0).normal(size=(len(w), 20)), a, y)
        model.feature_names_ = ("old",) * 12
        with pytest.raises(InvalidFieldError, match="refit"):
            model.proba_from_features(np.zeros((2, 20)), a[:2])


class TestSharedEnsemble:
    def test_shared_work_gives_each_members_own_probabilities(self, fitted, batch):
        """One preprocessing and one feature extraction per batch: every member's probability is bit-identical
        to its own predict_proba, and so is the combined one."""
        w, m, a = batch
        ens = fitted.ensemble.load()
        shared = ens.member_probs(w[:16], m[:16], a[:16])
        own = {mem.name: mem.predict_proba(w[:16], m[:16], a[:16]) for mem in ens.members}
        assert set(shared) == set(own) and len(own) == len(fitted.ensemble.members)
        for name in own:
            np.testing.assert_array_equal(shared[name], own[name])
        kinds = {mem.name: mem.kind for mem in ens.members}
        np.testing.assert_array_equal(ens.predict_proba(w[:16], m[:16], a[:16]), fitted.ensemble.combine(own, kinds))


def test_cascade_needing_an_unknown_extractor_is_refused(fitted, tmp_path):
    from unfold.persist import load, save

    path = save(fitted, tmp_path)
    doc = json.loads((path / "cascade.json").read_text())
    doc["stages"][0]["rungs"][0]["components"][0] = "lead_features"  # an extractor of an older version
    (path / "cascade.json").write_text(json.dumps(doc))
    with pytest.raises(HolmesInputError, match="'lead_features'.*holmes cascade fit"):
        load(tmp_path)
    shutil.rmtree(path)
