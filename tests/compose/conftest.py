"""Fixtures for the composer tests: a zoo table over the real records' labels and folds.

The members' out-of-fold predictions are simulated (quality and cost vary together, errors partly shared),
because the composer is tested as a function of its inputs; the real zoo is measured in bench/compose_*.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from holmes.compose import ZooTable
from models.data import cv_folds, list_records, resolve_data_dir


def make_table(n_members: int = 14, seed: int = 0) -> ZooTable:
    infos = [i for i in list_records(resolve_data_dir()) if i.label is not None]
    y = np.array([i.label for i in infos])
    folds = cv_folds(infos, seed=0)
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=len(y))
    rows, lat = [], []
    for j in range(n_members):
        skill = 0.3 + 0.9 * j / max(n_members - 1, 1) + rng.normal(0, 0.2)
        z = skill * (2 * y - 1) + 0.7 * shared + rng.normal(size=len(y))
        rows.append(1 / (1 + np.exp(-z)))
        base = 2.0 * (1.25 ** j) * rng.uniform(0.8, 1.2)
        lat.append([base * 0.3 + 0.5, base * 1.2 + 1, base * 8 + 2])
    return ZooTable(
        tuple(f"m{j:02d}" for j in range(n_members)), ("cnn",) * n_members, np.array(lat), (1, 8, 64),
        np.array(rows), y, folds, tuple(i.name for i in infos),
    )


@pytest.fixture(scope="session")
def table() -> ZooTable:
    return make_table()
