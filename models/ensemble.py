"""The one ensemble rule of the project, and the work an ensemble's members share.

Every place that combines members' probabilities (the zoo's ensemble rows in ``models.zoo_eval``, the
composer's subset scoring in ``holmes.compose.scoring``, the cascade's costly rung in ``unfold.ensemble``
and the service's ingress in ``deploy.ingress``) calls ``weights`` / ``combine`` here, so the same members
under the same rule give the same probability offline, in the cascade and on the service.

Rules:
    "mean"  every member weighs the same (the composer's ensembles)
    "zoo"   the CNNs together weigh as much as one feature model: the mean of the CNN-ensemble probability
            and each feature model's probability (the registry's ``cnn+features-ensemble`` row)

Shared work: the zoo's CNNs all read ``models.preprocess.preprocess(windows, masks)`` and its feature models
all read ``models.features.extract_batch(windows, masks)``; ``prepare`` does each once per batch, and
``head`` runs one member on it (a member without such a head reads the raw windows).

>>> import numpy as np
>>> weights(["c1", "c2", "f1"], {"c1": "cnn", "c2": "cnn", "f1": "features"}, "zoo").tolist()
[0.25, 0.25, 0.5]
>>> round(float(combine({"c1": np.array([0.2]), "c2": np.array([0.4]), "f1": np.array([0.9])},
...                     {"c1": "cnn", "c2": "cnn", "f1": "features"}, "zoo")[0]), 6)
0.6
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .errors import InvalidFieldError
from .member import check_batch, check_output

RULES = ("mean", "zoo")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InvalidFieldError("rule", "must be a known ensemble rule", rule, list(RULES))
    return rule


def weights(names: Sequence[str], kinds: Mapping[str, str], rule: str = "mean") -> np.ndarray:
    """Weight of each member (in ``names`` order) under ``rule``; they sum to 1."""
    check_rule(rule)
    names = list(names)
    if not names:
        raise InvalidFieldError("members", "must name at least one member", names)
    if rule == "mean":
        return np.full(len(names), 1.0 / len(names))
    missing = [n for n in names if n not in kinds]
    if missing:
        raise InvalidFieldError("kinds", "must give the kind of every member for the 'zoo' rule", missing)
    is_cnn = np.array([kinds[n] == "cnn" for n in names])
    n_cnn, n_other = int(is_cnn.sum()), int((~is_cnn).sum())
    parts = n_other + (1 if n_cnn else 0)
    return np.where(is_cnn, 1.0 / (parts * max(n_cnn, 1)), 1.0 / parts)


def subset_weights(masks: np.ndarray, kinds: Sequence[str], rule: str = "mean") -> np.ndarray:
    """``weights`` of many subsets at once: bool masks [K, M] over a zoo whose members have ``kinds`` [M]
    -> float [K, M] (each row sums to 1; an empty subset's row is 0)."""
    check_rule(rule)
    m = np.atleast_2d(np.asarray(masks, dtype=np.float64))
    if rule == "mean":
        return m / np.maximum(m.sum(1, keepdims=True), 1.0)
    cnn = np.asarray([k == "cnn" for k in kinds], dtype=np.float64)
    n_cnn, n_other = m @ cnn, m @ (1.0 - cnn)
    parts = n_other + (n_cnn > 0)
    w = np.where(cnn[None, :] > 0, 1.0 / (np.maximum(parts, 1) * np.maximum(n_cnn, 1))[:, None],
                 1.0 / np.maximum(parts, 1)[:, None])
    return m * w


def combine(probs: Mapping[str, np.ndarray], kinds: Mapping[str, str], rule: str = "mean",
            names: Sequence[str] | None = None) -> np.ndarray:
    """The ensemble probability of members ``names`` (default: every key of ``probs``, in order)."""
    names = list(names if names is not None else probs)
    missing = [n for n in names if n not in probs]
    if missing:
        raise InvalidFieldError("probs", "must hold every member's probability", missing)
    w = weights(names, kinds, rule)
    return w @ np.vstack([np.asarray(probs[n], dtype=np.float64) for n in names])


# ---------------------------------------------------------------------- shared work
def needs(member) -> str:
    """What a member reads: "cnn" (the shared CNN preprocessing), "features" (the shared features) or "raw"."""
    if hasattr(member, "proba_from_preprocessed"):
        return "cnn"
    if hasattr(member, "proba_from_features"):
        return "features"
    return "raw"


@dataclass
class Shared:
    """One batch's inputs and the work its members share (``None`` where no member needs it)."""

    windows: np.ndarray  # float32 [B, 5, n]
    masks: np.ndarray  # bool [B, 5]
    features: np.ndarray | None = None  # float [B, F] (models.features)
    prep: tuple | None = None  # models.preprocess.preprocess output
    prepare_ms: dict | None = None

    def __len__(self) -> int:
        return len(self.windows)

    @staticmethod
    def concat(parts: Sequence["Shared"]) -> "Shared":
        """Several requests' shared inputs as one batch (what ``@serve.batch`` merges)."""
        if len(parts) == 1:
            return parts[0]
        cat = np.concatenate
        feats = None if any(p.features is None for p in parts) else cat([p.features for p in parts])
        prep = None if any(p.prep is None for p in parts) else tuple(cat(list(xs)) for xs in zip(*(p.prep for p in parts)))
        return Shared(cat([p.windows for p in parts]), cat([p.masks for p in parts]), feats, prep)


def prepare(windows: np.ndarray, masks: np.ndarray, what: set[str] | Sequence[str], features: np.ndarray | None = None) -> Shared:
    """Do the shared work ``what`` ("cnn", "features") once for the batch. ``features``: the batch's feature rows
    already extracted by the caller (``models.features.extract_batch`` of these very windows, e.g. by the cascade's
    feature rung in the stream consumer), used instead of extracting them again; checked by ``check_features``."""
    import time

    windows = np.asarray(windows)
    masks = np.asarray(masks, dtype=bool)
    what = set(what)
    out, ms = Shared(windows, masks), {}
    if "cnn" in what and len(windows):
        from .preprocess import preprocess

        t = time.perf_counter()
        out.prep = preprocess(windows, masks)
        ms["cnn_preprocess"] = (time.perf_counter() - t) * 1e3
    if "features" in what and len(windows) and features is not None:
        out.features = check_features(features, len(windows))
        ms["features_given"] = 0.0
    elif "features" in what and len(windows):
        from .data import FS_HZ
        from .features import extract_batch

        t = time.perf_counter()
        out.features = extract_batch(windows, masks, FS_HZ)
        ms["features"] = (time.perf_counter() - t) * 1e3
    out.prepare_ms = ms
    return out


def check_features(features, n: int) -> np.ndarray:
    """Feature rows a caller passes with a batch: float [n, N_FEATURES] (NaN allowed: an absent signal), or a typed error."""
    from .errors import InvalidFieldError
    from .features import N_FEATURES

    f = np.asarray(features)
    if f.shape != (n, N_FEATURES) or not np.issubdtype(f.dtype, np.floating):
        raise InvalidFieldError("features", f"must be float rows [{n}, {N_FEATURES}] (one per window, models.features)",
                                f"{f.dtype}{list(f.shape)}")
    if np.isinf(f).any():
        raise InvalidFieldError("features", "must be finite or NaN", "inf")
    return f.astype(np.float64, copy=False)


def head(member, shared: Shared, alarm_types: Sequence[str]) -> np.ndarray:
    """One member's probabilities from the shared work (its own ``predict_proba`` where it has no head)."""
    n = len(shared)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    kind = needs(member)
    if kind == "cnn" and shared.prep is not None:
        n_samples = getattr(member, "n_samples", None)
        if n_samples is not None:
            check_batch(shared.windows, shared.masks, alarm_types, n_samples)
        p = member.proba_from_preprocessed(shared.prep, alarm_types)
    elif kind == "features" and shared.features is not None:
        p = member.proba_from_features(shared.features, alarm_types)
    else:
        p = member.predict_proba(shared.windows, shared.masks, alarm_types)
    return check_output(member.name, p, n)


class EnsembleModel:
    """An ensemble in process (a ``models.member.Member``): shared work once per batch, every member's head on
    it, combined by ``rule``. Each member's probability equals its own ``predict_proba``."""

    kind = "ensemble"

    def __init__(self, name: str, members: Sequence, rule: str = "mean"):
        self.name = name
        self.members = list(members)
        self.rule = check_rule(rule)
        self.kinds = {m.name: getattr(m, "kind", "features") for m in self.members}
        self.needs = {needs(m) for m in self.members} - {"raw"}

    def member_probs(self, windows, masks, alarm_types) -> dict[str, np.ndarray]:
        windows, masks = np.asarray(windows), np.asarray(masks, dtype=bool)
        check_batch(windows, masks, alarm_types)
        shared = prepare(windows, masks, self.needs)
        return {m.name: head(m, shared, alarm_types) for m in self.members}

    def predict_proba(self, windows, masks, alarm_types) -> np.ndarray:
        probs = self.member_probs(windows, masks, alarm_types)
        return check_output(self.name, combine(probs, self.kinds, self.rule, [m.name for m in self.members]), len(windows))
