"""Fixtures for the zoo tests: the committed registry, real CinC records, a scratch copy of the registry.

The shared member checks are parametrised over every member of the committed registry
(artifacts/registry, LATEST; $HOLMES_REGISTRY overrides it), CNNs and feature models alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.data import load_dataset, resolve_data_dir
from models.registry import Registry, default_registry_path
from models.zoo_eval import alarm_batch

# a few records of every alarm type, labels of both kinds, ABP present and absent
RECORD_NAMES = ("a109l", "a161l", "b184s", "b269l", "t116s", "t106s", "f129l", "f543l", "v113l", "v132s", "a134s", "t108s")


def committed_members() -> list[str]:
    reg = Registry(default_registry_path())
    return reg.members() if reg.versions() else []


def pytest_generate_tests(metafunc):
    if "member_name" in metafunc.fixturenames:
        names = committed_members()
        metafunc.parametrize("member_name", names or ["<registry missing>"])


@pytest.fixture(scope="session")
def registry() -> Registry:
    reg = Registry(default_registry_path())
    assert reg.versions(), f"the registry {reg.path} has no version"
    return reg


@pytest.fixture(scope="session")
def records():
    data = resolve_data_dir()
    recs, skipped = load_dataset(data)
    by_name = {r.name: r for r in recs}
    chosen = [by_name[n] for n in RECORD_NAMES if n in by_name]
    if len(chosen) < 8:  # another development folder: take the first labelled records
        chosen = [r for r in recs if r.label is not None][:12]
    return chosen


@pytest.fixture(scope="session")
def batch(records):
    """(windows [B, 5, 4000], masks [B, 5], alarm_types) ending at each record's alarm."""
    return alarm_batch(records, 16.0)


@pytest.fixture
def scratch_registry(tmp_path, registry) -> Registry:
    """A writable copy of the committed registry's LATEST version (as v0001)."""
    src = registry.path / registry.latest()
    dst = tmp_path / "registry"
    dst.mkdir()
    shutil.copytree(src, dst / "v0001")
    (dst / "LATEST").write_text("v0001\n")
    return Registry(dst)
