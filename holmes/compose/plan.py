"""A serving plan: the ensembles chosen for a set of latency budgets at a load, saved as JSON.

The plan is everything the service needs besides the weights: which members to deploy, the ensembles
(members + decision threshold) with their OOF scores, the latency model and the load they were chosen for.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.errors import InvalidFieldError

PLAN_VERSION = 1


@dataclass(frozen=True)
class EnsembleSpec:
    """One servable ensemble: ``members`` combined by ``rule`` (``models.ensemble``); true alarm when p >= ``threshold``."""

    name: str
    members: tuple[str, ...]
    threshold: float = 0.5
    rule: str = "mean"
    budget_ms: float | None = None
    auroc: float | None = None  # nested: search and threshold chosen without the fold scored (see composer)
    score: float | None = None  # nested challenge score
    tpr: float | None = None
    tnr: float | None = None
    score_in_sample: float | None = None  # the chosen subset on the predictions it was chosen on: optimistic
    calibration: dict | None = None  # models.calibration map of the mean probability (fitted on the subset's OOF)
    service_ms: float | None = None  # predicted service time at the plan's load
    p50_ms: float | None = None
    p99_ms: float | None = None
    method: str | None = None
    n_evaluated: int | None = None
    search_s: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["members"] = list(self.members)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass(frozen=True)
class Plan:
    ensembles: tuple[EnsembleSpec, ...]
    member_latency_ms: dict  # {member: {batch_size(str): ms}}
    latency_model: dict = field(default_factory=dict)
    load: dict = field(default_factory=dict)
    registry: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)  # {member: "cnn" | "features" | ...}: what the "zoo" rule reads

    def floor(self) -> EnsembleSpec:
        """The most accurate row on nested CV (its stated ``score``; AUROC breaks ties): the default floor of the
        verdicts."""
        return max(self.ensembles, key=lambda e: (e.score if e.score is not None else -1.0,
                                                   e.auroc if e.auroc is not None else -1.0, -len(e.members)))

    @property
    def members(self) -> list[str]:
        """Every member some ensemble uses, in first-use order."""
        out: list[str] = []
        for e in self.ensembles:
            out += [m for m in e.members if m not in out]
        return out

    def get(self, name: str) -> EnsembleSpec:
        for e in self.ensembles:
            if e.name == name:
                return e
        raise InvalidFieldError("ensemble", "must name an ensemble of the plan", name, [e.name for e in self.ensembles])

    def to_dict(self) -> dict:
        return {
            "plan_version": PLAN_VERSION,
            "registry": self.registry,
            "load": self.load,
            "latency_model": self.latency_model,
            "member_latency_ms": self.member_latency_ms,
            "kinds": self.kinds,
            "ensembles": [e.to_dict() for e in self.ensembles],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        if d.get("plan_version") != PLAN_VERSION:
            raise InvalidFieldError("plan_version", f"must be {PLAN_VERSION}", d.get("plan_version"))
        ens = []
        fields = set(EnsembleSpec.__dataclass_fields__)
        for i, e in enumerate(d.get("ensembles", [])):
            unknown = set(e) - fields
            if unknown:
                raise InvalidFieldError(f"ensembles[{i}]", "has unknown keys", sorted(unknown), sorted(fields))
            if not e.get("members"):
                continue  # a budget nothing fits: kept in the JSON for the record, never served
            ens.append(EnsembleSpec(**{**e, "members": tuple(e["members"])}))
        if not ens:
            raise InvalidFieldError("ensembles", "must contain at least one ensemble with members", 0)
        lat = d.get("member_latency_ms", {})
        missing = [m for e in ens for m in e.members if m not in lat]
        if missing:
            raise InvalidFieldError("member_latency_ms", "must list every member of every ensemble", sorted(set(missing)))
        kinds = d.get("kinds", {}) or {}
        from models.ensemble import check_rule

        for e in ens:
            try:
                check_rule(e.rule)
            except InvalidFieldError:
                raise InvalidFieldError(f"ensembles[{e.name}].rule", "must be a models.ensemble rule", e.rule, ["mean", "zoo"]) from None
            if e.rule != "mean" and any(m not in kinds for m in e.members):
                raise InvalidFieldError("kinds", f"must give the kind of every member of {e.name} (rule {e.rule})",
                                        sorted(m for m in e.members if m not in kinds))
        return cls(tuple(ens), lat, d.get("latency_model", {}), d.get("load", {}), d.get("registry", {}), kinds)

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        path = Path(path)
        if not path.is_file():
            raise InvalidFieldError("plan", "must be a plan JSON file written by `holmes compose`", str(path))
        return cls.from_dict(json.loads(path.read_text()))


def row_probabilities(plan: Plan, row: str, registry_dir: str | Path, windows, masks, alarm_types):
    """What the service publishes for plan row ``row`` on these windows, computed in process: the row's members from
    the plan's registry version, its combining rule and its calibration map. The offline side of the end-to-end
    verdict checks (bench/serve_beds.py, tests/demo)."""
    from models.calibration import Calibrator
    from models.ensemble import EnsembleModel
    from models.registry import Registry

    reg = Registry(registry_dir)
    version = plan.registry.get("version") or reg.latest()
    spec = plan.get(row)
    model = EnsembleModel(row, [reg.load(m, version) for m in spec.members], spec.rule)
    return Calibrator.from_dict(spec.calibration).transform(model.predict_proba(windows, masks, list(alarm_types)))
