"""Fixtures for the cascade tests: the real records, the committed registry and the committed cascade."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def records():
    from models.data import load_dataset, resolve_data_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs, _ = load_dataset(resolve_data_dir())
    return [r for r in recs if r.label is not None]


@pytest.fixture(scope="session")
def fitted():
    from unfold.persist import load

    return load()  # artifacts/cascade (committed)


@pytest.fixture(scope="session")
def ensemble_scorer(fitted):
    from unfold.scorer import local_costly

    return local_costly(fitted)
