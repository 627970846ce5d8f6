"""The shared checks, run over every member of the committed registry (CNNs and feature models alike)."""

from __future__ import annotations

import numpy as np
import pytest

from models.member import Member
from models.registry import Registry


@pytest.fixture
def member(registry, member_name):
    return registry.load(member_name)


class TestMemberContract:
    def test_is_member_with_profile(self, registry, member, member_name):
        assert isinstance(member, Member)
        assert member.name == member_name
        prof = registry.profile(member_name)
        assert prof["kind"] == member.kind
        if member.kind == "cnn":
            assert "cnn" in member.name
        assert set(prof["latency_ms"]) == {"1", "8", "64"}
        assert all(v > 0 for v in prof["latency_ms"].values())
        assert prof["latency_ms"]["64"] > prof["latency_ms"]["1"]
        assert prof["params"] > 0
        assert prof["macs"] > 0 if member.kind == "cnn" else prof["macs"] >= 0
        assert 0.5 < prof["cv"]["auroc"] <= 1.0 and 0.0 < prof["cv"]["score"] <= 100.0
        oof = prof["oof"]
        assert len(oof["records"]) == len(oof["prob"]) == len(oof["fold"]) >= 50
        assert oof["seed"] == 0 and set(oof["fold"]) == {0, 1, 2, 3, 4}
        assert all(0.0 <= p <= 1.0 for p in oof["prob"])
        assert prof["inputs"]["fs_hz"] == 250 and prof["inputs"]["window_s"] == member.window_s

    def test_shape_and_range(self, member, batch):
        windows, masks, types = batch
        p = member.predict_proba(windows, masks, types)
        assert p.shape == (len(types),)
        assert np.all(np.isfinite(p)) and p.min() >= 0.0 and p.max() <= 1.0
        assert p.std() > 1e-4  # not a constant

    def test_deterministic(self, member, batch):
        windows, masks, types = batch
        a = member.predict_proba(windows, masks, types)
        b = member.predict_proba(windows.copy(), masks.copy(), list(types))
        np.testing.assert_array_equal(a, b)

    def test_batch_equals_one_by_one(self, member, batch):
        windows, masks, types = batch
        full = member.predict_proba(windows, masks, types)
        single = np.array([member.predict_proba(windows[i : i + 1], masks[i : i + 1], types[i : i + 1])[0] for i in range(len(types))])
        np.testing.assert_allclose(full, single, rtol=0, atol=1e-5)

    def test_save_load_round_trip(self, registry, member, member_name, batch, tmp_path):
        windows, masks, types = batch
        fresh = Registry(tmp_path / "reg")
        prof = registry.profile(member_name)
        v = fresh.write_version([{"member": member, "profile": prof}])
        loaded = fresh.load(member_name, version=v)
        assert loaded is not member
        np.testing.assert_array_equal(member.predict_proba(windows, masks, types), loaded.predict_proba(windows, masks, types))
        assert loaded.threshold_ == pytest.approx(prof["cv"]["threshold"])

    def test_missing_slots_give_finite_output(self, member, batch):
        windows, masks, types = batch
        w = windows.copy()
        w[:, :, 1000:1400] = np.nan  # a 1.6 s NaN run in every slot
        m = masks.copy()
        m[:, 2:] = False  # ABP, PPG and RESP absent
        w[:, 2:] = np.nan
        p = member.predict_proba(w, m, types)
        assert np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 1
        m_none = np.zeros_like(masks)  # nothing at all: still a probability, never NaN
        p0 = member.predict_proba(np.full_like(windows, np.nan), m_none, types)
        assert np.all(np.isfinite(p0))

    def test_mask_is_respected(self, member, batch):
        """A slot marked absent is ignored: whatever it holds (real signal, noise, NaN) the output is the same."""
        windows, masks, types = batch
        m = masks.copy()
        m[:, 3] = False  # PPG absent
        w_nan = windows.copy()
        w_nan[:, 3] = np.nan
        w_noise = windows.copy()
        w_noise[:, 3] = np.random.default_rng(0).normal(0, 50, size=w_noise[:, 3].shape)
        np.testing.assert_allclose(member.predict_proba(w_nan, m, types), member.predict_proba(w_noise, m, types), atol=1e-9)
