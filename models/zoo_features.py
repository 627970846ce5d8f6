"""Feature models (``models.feature_models``) as registry entries with the same profile as the CNNs."""

from __future__ import annotations

import importlib.util


def features_available() -> bool:
    """True when the feature-model module is installed."""
    return importlib.util.find_spec("models.feature_models") is not None


def feature_entries(records, folds, seed: int, tiny: bool = False) -> list[dict]:
    raise NotImplementedError("models.feature_models integration pending")
