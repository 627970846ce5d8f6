"""The costly rung: a registry ensemble or a row of a serving plan, referenced by name, with its OOF probability,
cost and an in-process member for offline use (in the stream the service runs it; ``unfold`` never imports deploy).

``EnsembleRef.from_registry(name)``: a registry ensemble row (``cnn+features-ensemble``, rule zoo) or ``all``.
``EnsembleRef.from_plan(path, row)``: a row of a plan (``holmes.compose.plan``; ``row="floor"``: ``Plan.floor()``),
the members and rule the service runs under that name; ``plan`` then names the plan file, so the cascade can ask
the service for that very row for the windows it escalates (``unfold.scorer``).

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
    plan: str | None = None  # the plan file this is a row of (None: a registry ensemble row)

    @property
    def is_plan_row(self) -> bool:
        return self.plan is not None

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

    @classmethod
    def from_plan(cls, plan, row: str = "floor", registry=None, version: str | None = None) -> "EnsembleRef":
        """Row ``row`` of the plan at ``plan`` ("floor": ``Plan.floor()``, the most accurate row on nested CV) on the
        plan's registry (``registry`` overrides its folder; ``version``, if given, must be the plan's: its rows were
        chosen on that version's out-of-fold predictions)."""
        from holmes.compose.plan import Plan

        path = Path(plan)
        if not path.is_absolute() and not path.is_file() and (PROJECT_ROOT / path).is_file():
            path = PROJECT_ROOT / path
        try:
            p = Plan.load(path)
        except InvalidFieldError as e:
            if e.field == "plan":
                raise InvalidFieldError("--plan", "must be a plan JSON file written by `holmes compose`", str(plan)) from None
            raise
        names = [e.name for e in p.ensembles]
        if not isinstance(row, str) or not row or (row != "floor" and row not in names):
            raise InvalidFieldError("--ensemble", f"must be 'floor' or the name of a row of plan {plan}", row, ["floor"] + names)
        spec = p.floor() if row == "floor" else p.get(row)
        reg_path = registry
        if reg_path is None and p.registry.get("path"):  # a plan's relative registry folder is the project's
            reg_path = Path(p.registry["path"])
            if not reg_path.is_absolute() and (PROJECT_ROOT / reg_path).is_dir():
                reg_path = PROJECT_ROOT / reg_path
        plan_version = p.registry.get("version")
        if version is not None and plan_version is not None and version != plan_version:
            raise InvalidFieldError("--version", f"must be the registry version plan {plan} was composed on (or absent)", version,
                                    [plan_version])
        from models.registry import Registry

        reg = Registry(reg_path)
        v = plan_version or version or reg.latest()
        missing = [m for m in spec.members if m not in reg.members(v)]
        if missing:
            raise InvalidFieldError("members", f"of plan row {spec.name} must be members of registry {reg.path}/{v}", missing)
        return cls(spec.name, tuple(spec.members), spec.rule, str(reg.path), v, _rel(path.resolve()))

    def source(self) -> dict:
        """What the costly rung is, for a fitted cascade's info: a plan row (which row of which plan file) or a
        registry ensemble row."""
        if self.is_plan_row:
            return {"kind": "plan_row", "plan": self.plan, "row": self.name, "registry": _rel(self.registry), "version": self.version}
        return {"kind": "registry_ensemble", "row": self.name, "registry": _rel(self.registry), "version": self.version}

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
        d = {"name": self.name, "members": list(self.members), "rule": self.rule, "registry": _rel(self.registry), "version": self.version}
        if self.plan is not None:
            d["plan"] = _rel(self.plan)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EnsembleRef":
        reg = d.get("registry")
        if reg is not None and not Path(reg).is_absolute():
            reg = str(PROJECT_ROOT / reg)
        return cls(d["name"], tuple(d["members"]), d.get("rule", "mean"), reg, d.get("version"), d.get("plan"))


def _rel(path) -> str | None:
    """A path inside this project relative to its root (as saved), any other as given."""
    if path is None:
        return None
    p = Path(path).resolve()
    return p.relative_to(PROJECT_ROOT).as_posix() if p.is_relative_to(PROJECT_ROOT) else str(path)


class EnsembleMember(EnsembleModel):
    """The ensemble in process (a ``models.member.Member``): ``models.ensemble.EnsembleModel`` over the
    registry members of ``ref``, with its rule. Work the members share (CNN preprocessing, feature
    extraction) is done once per batch; each member's probability equals its own ``predict_proba``
    (tests/cascade/test_quick.py)."""

    def __init__(self, ref: EnsembleRef, members):
        super().__init__(ref.name, members, ref.rule)
        self.ref = ref
