"""The costly rung: a registry ensemble, referenced by name, with its OOF probability, cost and an
in-process member for offline use (in the stream the service runs it; ``unfold`` never imports deploy).

The rule ("mean" or "zoo") is ``models.ensemble``'s, the one every part of the project combines members with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.ensemble import RULES, EnsembleModel, combine  # noqa: F401  (RULES: re-exported)
from models.errors import InvalidFieldError
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
        return combine(probs, kinds, self.rule, self.members)

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


class EnsembleMember(EnsembleModel):
    """The ensemble in process (a ``models.member.Member``): ``models.ensemble.EnsembleModel`` over the
    registry members of ``ref``, with its rule. Work the members share (CNN preprocessing, feature
    extraction) is done once per batch; each member's probability equals its own ``predict_proba``
    (tests/cascade/test_quick.py)."""

    def __init__(self, ref: EnsembleRef, members):
        super().__init__(ref.name, members, ref.rule)
        self.ref = ref
