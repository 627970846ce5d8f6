"""The ``features`` scorer: the best feature model of the registry, in process (registered on import).

``make_scorer("features", registry=PATH)`` loads the feature-kind member with the best cross-validated
challenge score from the registry's latest version (its threshold as ``threshold_``) and publishes calibrated
probabilities: the map (``models.calibration``, method chosen by CV) is fitted on the member's out-of-fold
predictions in the registry; verdicts stay those of the member's threshold. Without a usable
registry it fits ``model`` (default ``features-gbm``) on the alarm windows of every record of the data
folder and says so in the log: slower to start, same scoring path.
"""

from __future__ import annotations

import logging
import time

from models.errors import HolmesInputError

from .scorer import MemberScorer, register_scorer

log = logging.getLogger(__name__)
FALLBACK_MODEL = "features-gbm"


def best_registry_member(registry=None):
    """(member, profile) of the feature model with the best CV challenge score, or None without one."""
    from models.registry import Registry, RegistryError

    reg = Registry(registry)
    try:
        profiles = [p for p in reg.profiles() if p.get("kind") == "features"]
    except (RegistryError, OSError) as e:
        log.info("registry %s not usable (%s)", reg.path, e)
        return None
    if not profiles:
        return None
    best = max(profiles, key=lambda p: (p.get("cv", {}).get("score", -1.0), p.get("cv", {}).get("auroc", 0.0)))
    return reg.load(best["name"]), best


def fit_on_data(data=None, model: str = FALLBACK_MODEL, limit: int | None = None):
    """Fit a feature model on the alarm windows of the data folder's records (threshold from inner CV)."""
    import numpy as np

    from models.data import alarm_window, load_dataset, resolve_data_dir
    from models.feature_models import make_feature_model
    from models.features import extract_batch

    t0 = time.perf_counter()
    data_dir = resolve_data_dir(data)
    records, _ = load_dataset(data_dir, progress=True)
    records = [r for r in records if r.label is not None][:limit]
    if len(records) < 20:
        raise HolmesInputError(f"--data {data_dir}: {len(records)} labelled records, need >= 20 to fit a feature model")
    X = extract_batch(np.stack([alarm_window(r) for r in records]), np.stack([r.mask for r in records]))
    member = make_feature_model(model).fit(X, [r.alarm_type for r in records], np.array([r.label for r in records]))
    log.warning("no feature model in the registry: fitted %s on %d records of %s in %.1f s",
                model, len(records), data_dir, time.perf_counter() - t0)
    return member


def features_factory(registry=None, data=None, model: str | None = None, threshold: float | None = None, workers: int = 1,
                     **_ignored):
    found = None if model else best_registry_member(registry)
    calibrator = None
    if found is not None:
        member, profile = found
        calibrator = profile_calibrator(profile)
        log.info("scorer: %s from the registry (CV score %s, threshold %.3f, calibration %s)", member.name,
                 profile.get("cv", {}).get("score"), member.threshold_, calibrator.method)
    else:
        member = fit_on_data(data, model or FALLBACK_MODEL)
    return MemberScorer(member, threshold, workers=workers, calibrator=calibrator)


def profile_calibrator(profile: dict):
    """The calibration map of a registry member, fitted on its out-of-fold predictions (method chosen by CV)."""
    from models.calibration import fit_on_oof

    oof = profile["oof"]
    return fit_on_oof(oof["prob"], oof["label"], oof["fold"])


register_scorer("features", features_factory)
