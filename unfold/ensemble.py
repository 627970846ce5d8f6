"""The costly rung: a registry ensemble, referenced by name, with its OOF probability, cost and an
in-process member for offline use (in the stream the service runs it; ``unfold`` never imports deploy).

Rules (as in ``models.zoo_eval``):
    "mean"  mean probability of the members (the composer's ensembles)
    "zoo"   mean of the CNN-ensemble probability and each feature model's probability
            (the registry's ``cnn+features-ensemble`` row)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import InvalidFieldError
from models.member import check_batch, check_output

RULES = ("mean", "zoo")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
BATCH = "64"  # cost per window at the batch size the stream sends


@dataclass(frozen=True)
class EnsembleRef:
    name: str
    members: tuple[str, ...]
    rule: str = "mean"
    registry: str | None = None
    version: str | None = None

    @classmethod
    def from_registry(cls, name: str = "cnn+features-ensemble", registry=None, version: str | None = None) -> "EnsembleRef":
        from models.registry import Registry

        reg = Registry(registry)
        v = version or reg.latest()
        rows = reg.ensembles(v)
        if name in rows:
            members = tuple(rows[name]["members"])
            rule = "zoo" if name == "cnn+features-ensemble" else "mean"
        elif name == "all":
            members, rule = tuple(reg.members(v)), "mean"
        else:
            raise InvalidFieldError("ensemble", f"must be an ensemble row of registry {reg.path}/{v} or 'all'", name, sorted(rows) + ["all"])
        return cls(name, members, rule, str(reg.path), v)

    def _registry(self):
        from models.registry import Registry

        return Registry(self.registry)

    def profiles(self) -> dict:
        reg = self._registry()
        return {n: reg.profile(n, self.version) for n in self.members}

    def combine(self, probs: dict[str, np.ndarray], kinds: dict[str, str]) -> np.ndarray:
        if self.rule not in RULES:
            raise InvalidFieldError("rule", "must be a known ensemble rule", self.rule, RULES)
        if self.rule == "mean":
            return np.mean([probs[n] for n in self.members], axis=0)
        cnn = [probs[n] for n in self.members if kinds[n] == "cnn"]
        feat = [probs[n] for n in self.members if kinds[n] != "cnn"]
        parts = ([np.mean(cnn, axis=0)] if cnn else []) + feat
        return np.mean(parts, axis=0)

    def oof(self, records) -> tuple[np.ndarray, np.ndarray]:
        """(OOF probability, fold) per record name, from the members' registry profiles."""
        profs = self.profiles()
        probs, folds = {}, None
        for n, p in profs.items():
            pos = {r: i for i, r in enumerate(p["oof"]["records"])}
            missing = [r for r in records if r not in pos]
            if missing:
                raise InvalidFieldError("records", f"must have out-of-fold predictions of {n} in the registry", missing[:5])
            probs[n] = np.array([p["oof"]["prob"][pos[r]] for r in records], dtype=np.float64)
            f = np.array([p["oof"]["fold"][pos[r]] for r in records])
            if folds is not None and not np.array_equal(f, folds):
                raise InvalidFieldError("folds", "must be the same for every member of the ensemble", n)
            folds = f
        return self.combine(probs, {n: p["kind"] for n, p in profs.items()}), folds

    def cost(self) -> dict:
        """{"ms", "macs"} per window: the sum over members of the measured latency at batch 64 / 64."""
        profs = self.profiles()
        ms = sum(float(p["latency_ms"][BATCH]) / int(BATCH) for p in profs.values())
        return {"ms": ms, "macs": float(sum(p.get("macs", 0) for p in profs.values())),
                "note": f"{self.name}: sum of {len(profs)} members' registry latency at batch {BATCH} / {BATCH}"}

    def load(self) -> "EnsembleMember":
        reg = self._registry()
        return EnsembleMember(self, [reg.load(n, self.version) for n in self.members])

    def to_dict(self) -> dict:
        """JSON form; a registry inside this project is stored relative to the project root, so a saved
        cascade keeps working when the checkout moves."""
        reg = self.registry
        if reg is not None and Path(reg).resolve().is_relative_to(PROJECT_ROOT):
            reg = Path(reg).resolve().relative_to(PROJECT_ROOT).as_posix()
        return {"name": self.name, "members": list(self.members), "rule": self.rule, "registry": reg, "version": self.version}

    @classmethod
    def from_dict(cls, d: dict) -> "EnsembleRef":
        reg = d.get("registry")
        if reg is not None and not Path(reg).is_absolute():
            reg = str(PROJECT_ROOT / reg)
        return cls(d["name"], tuple(d["members"]), d.get("rule", "mean"), reg, d.get("version"))


class EnsembleMember:
    """The ensemble in process (a ``models.member.Member``): every member on the batch, combined by the rule.

    Work the members share is done once per batch: the CNN preprocessing (the same for every zoo CNN) and
    the feature extraction (the same for every feature model); each member then runs its own model on it.
    The probabilities are those of each member's own ``predict_proba`` (tests/cascade/test_quick.py).
    """

    kind = "ensemble"

    def __init__(self, ref: EnsembleRef, members):
        self.ref = ref
        self.name = ref.name
        self.members = list(members)

    def member_probs(self, windows, masks, alarm_types) -> dict[str, np.ndarray]:
        from models.cnn import CNNMember
        from models.feature_models import FeatureModel

        windows, masks = np.asarray(windows), np.asarray(masks, dtype=bool)
        cnn = [m for m in self.members if isinstance(m, CNNMember)]
        feat = [m for m in self.members if isinstance(m, FeatureModel)]
        probs = {}
        if cnn:
            from models.preprocess import preprocess

            for n in sorted({m.n_samples for m in cnn}):
                check_batch(windows, masks, alarm_types, n)
            prep = preprocess(windows, masks)
            for m in cnn:
                probs[m.name] = m.proba_from_preprocessed(prep, alarm_types)
        if feat:
            from models.data import FS_HZ
            from models.features import extract_batch

            X = extract_batch(windows, masks, FS_HZ)
            for m in feat:
                probs[m.name] = m.proba_from_features(X, alarm_types)
        for m in self.members:
            if m.name not in probs:
                probs[m.name] = m.predict_proba(windows, masks, alarm_types)
        return {m.name: check_output(m.name, probs[m.name], len(windows)) for m in self.members}

    def predict_proba(self, windows, masks, alarm_types) -> np.ndarray:
        check_batch(windows, masks, alarm_types)
        probs = self.member_probs(windows, masks, alarm_types)
        return check_output(self.name, self.ref.combine(probs, {m.name: m.kind for m in self.members}), len(windows))
