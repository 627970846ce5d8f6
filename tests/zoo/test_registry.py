"""Registry integrity: checksums refuse corrupted or truncated files, versions never overwrite, fallback serves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.registry import Registry, RegistryIntegrityError


def _a_cnn(reg: Registry) -> str:
    return next(m["name"] for m in reg.index()["members"] if m["kind"] == "cnn")


def _weights(reg: Registry, name: str, version: str = "v0001"):
    entry = next(m for m in reg.index(version)["members"] if m["name"] == name)
    return reg.path / version / entry["weights_file"]


class TestIntegrity:
    def test_clean_copy_loads(self, scratch_registry):
        name = _a_cnn(scratch_registry)
        m = scratch_registry.load(name, version="v0001")
        assert m.version == "v0001" and m.name == name

    def test_flipped_byte_is_refused(self, scratch_registry):
        name = _a_cnn(scratch_registry)
        f = _weights(scratch_registry, name)
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
        with pytest.raises(RegistryIntegrityError, match=r"sha256 must be .*corrupted or truncated"):
            scratch_registry.load(name, version="v0001")

    def test_truncated_file_is_refused(self, scratch_registry):
        name = _a_cnn(scratch_registry)
        f = _weights(scratch_registry, name)
        f.write_bytes(f.read_bytes()[:100])
        with pytest.raises(RegistryIntegrityError, match=f"{f.name} sha256"):
            scratch_registry.load(name, version="v0001")

    def test_edited_profile_is_refused(self, scratch_registry):
        name = _a_cnn(scratch_registry)
        pf = scratch_registry.path / "v0001" / f"{name}.json"
        prof = json.loads(pf.read_text())
        prof["cv"]["threshold"] = 0.01
        pf.write_text(json.dumps(prof))
        with pytest.raises(RegistryIntegrityError, match=f"{name}.json sha256"):
            scratch_registry.load(name, version="v0001")

    def test_missing_file_is_refused(self, scratch_registry):
        name = _a_cnn(scratch_registry)
        _weights(scratch_registry, name).unlink()
        with pytest.raises(RegistryIntegrityError, match="is missing"):
            scratch_registry.load(name, version="v0001")


class TestVersions:
    def _new_version(self, reg: Registry) -> str:
        entries = [{"copy_from": ("v0001", n)} for n in reg.members("v0001")]
        return reg.write_version(entries, reg.ensembles("v0001"))

    def test_new_version_never_overwrites(self, scratch_registry):
        reg = scratch_registry
        before = {p.name: p.read_bytes() for p in (reg.path / "v0001").iterdir()}
        v2 = self._new_version(reg)
        assert v2 == "v0002" and reg.latest() == "v0002" and reg.versions() == ["v0001", "v0002"]
        assert {p.name: p.read_bytes() for p in (reg.path / "v0001").iterdir()} == before
        assert reg.members("v0002") == reg.members("v0001")
        assert reg.profile(reg.members()[0])["version"] == "v0002"

    def test_corrupted_latest_falls_back_to_previous(self, scratch_registry, batch):
        reg = scratch_registry
        self._new_version(reg)
        name = _a_cnn(reg)
        f = _weights(reg, name, "v0002")
        f.write_bytes(f.read_bytes()[:-64])  # truncated
        with pytest.raises(RegistryIntegrityError):
            reg.load(name, version="v0002")
        with pytest.raises(RegistryIntegrityError):
            reg.load(name, fallback=False)
        m = reg.load(name)  # LATEST is broken for this member: the previous version serves
        assert m.version == "v0001"
        windows, masks, types = batch
        assert np.all(np.isfinite(m.predict_proba(windows, masks, types)))

    def test_loaded_member_stays_served_after_corruption(self, scratch_registry, batch):
        reg = scratch_registry
        name = _a_cnn(reg)
        m = reg.load(name, version="v0001")
        windows, masks, types = batch
        before = m.predict_proba(windows, masks, types)
        f = _weights(reg, name)
        f.write_bytes(b"garbage")
        again = reg.load(name, version="v0001")
        assert again is m
        np.testing.assert_array_equal(again.predict_proba(windows, masks, types), before)
        with pytest.raises(RegistryIntegrityError):
            Registry(reg.path).load(name, version="v0001")  # a fresh process refuses the broken file

    def test_half_written_version_is_invisible(self, scratch_registry):
        reg = scratch_registry
        (reg.path / "v0002.partial").mkdir()
        assert reg.versions() == ["v0001"] and reg.latest() == "v0001"
        assert reg.next_version() == "v0003"

    def test_unknown_member_and_version_are_named(self, scratch_registry):
        from models.errors import InvalidFieldError

        with pytest.raises(InvalidFieldError, match="member must be registered"):
            scratch_registry.load("cnn-nope")
        with pytest.raises(InvalidFieldError, match="version must be a version"):
            scratch_registry.index("v0042")
