"""A fitted cascade on disk: a versioned folder ``artifacts/cascade/vNNNN/`` with ``cascade.json`` (stages,
gates, costs, the ensemble reference, CV figures) and ``models.joblib`` (the in-process rung models), the
JSON naming the models file's SHA-256. ``LATEST`` names the newest complete version; a new fit never
overwrites an old one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import HolmesInputError, InvalidFieldError
from models.registry import sha256_file

from .cascade import Cascade, Rung, Stage
from .costs import CostTable
from .ensemble import EnsembleRef

FORMAT = 1
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "artifacts" / "cascade"


def default_dir() -> Path:
    env = os.environ.get("HOLMES_CASCADE")
    return Path(env).expanduser() if env else DEFAULT_DIR


@dataclass
class FittedCascade:
    cascade: Cascade
    models: dict  # rung model name -> fitted model (proba_from_features)
    ensemble: EnsembleRef
    info: dict = field(default_factory=dict)  # CV figures, budgets, data, timings
    version: str | None = None


def _stages_to_list(stages) -> list[dict]:
    return [{"name": s.name, "alarm_types": list(s.alarm_types) if s.alarm_types else None,
             "rungs": [{"name": r.name, "components": list(r.components)} for r in s.rungs]} for s in stages]


def _stages_from_list(d) -> list[Stage]:
    return [Stage(s["name"], tuple(Rung(r["name"], tuple(r["components"])) for r in s["rungs"]),
                  tuple(s["alarm_types"]) if s.get("alarm_types") else None) for s in d]


def save(fitted: FittedCascade, root: str | os.PathLike | None = None) -> Path:
    import joblib

    root = Path(root) if root is not None else default_dir()
    root.mkdir(parents=True, exist_ok=True)
    n = max((int(p.name[1:5]) for p in root.glob("v[0-9][0-9][0-9][0-9]*")), default=0)
    version = f"v{n + 1:04d}"
    tmp = root / f"{version}.partial"
    tmp.mkdir()
    joblib.dump(fitted.models, tmp / "models.joblib", compress=3)
    c = fitted.cascade
    doc = {"format": FORMAT, "version": version, "stages": _stages_to_list(c.stages), "costs": c.costs.to_dict(),
           "budgets_ms": c.budgets_ms, "grid_step": c.grid_step, "max_ick0": c.max_ick0, "min_ick1": c.min_ick1,
           "max_miss_rate": c.max_miss_rate,
           "thresholds_": [[g.to_dict() for g in row] for row in c.thresholds_], "ensemble": fitted.ensemble.to_dict(),
           "models_file": "models.joblib", "models_sha256": sha256_file(tmp / "models.joblib"), "info": fitted.info}
    (tmp / "cascade.json").write_text(json.dumps(doc, indent=1, default=float))
    tmp.rename(root / version)
    (root / "LATEST.tmp").write_text(version + "\n")
    (root / "LATEST.tmp").replace(root / "LATEST")
    fitted.version = version
    return root / version


def load(root: str | os.PathLike | None = None, version: str | None = None) -> FittedCascade:
    import joblib

    root = Path(root) if root is not None else default_dir()
    if version is None:
        pointer = root / "LATEST"
        if not pointer.is_file():
            raise HolmesInputError(f"no fitted cascade in {root}: run `holmes cascade fit`")
        version = pointer.read_text().strip()
    folder = root / version
    f = folder / "cascade.json"
    if not f.is_file():
        raise InvalidFieldError("version", f"must be a fitted cascade in {root}", version,
                                sorted(p.name for p in root.glob("v[0-9][0-9][0-9][0-9]")))
    doc = json.loads(f.read_text())
    if doc.get("format") != FORMAT:
        raise InvalidFieldError("format", f"of {f} must be {FORMAT}", doc.get("format"))
    mfile = folder / doc["models_file"]
    if not mfile.is_file() or sha256_file(mfile) != doc["models_sha256"]:
        raise HolmesInputError(f"{mfile}: missing or its SHA-256 does not match cascade.json; refusing to load it")
    stages = _stages_from_list(doc["stages"])
    from .live import EXTRACTORS

    for st in stages:
        for r in st.rungs:
            extra = [c for c in r.components[:-1] if c not in EXTRACTORS]
            if extra:
                raise HolmesInputError(f"{f}: rung {st.name}/{r.name} needs the feature extractor {extra[0]!r}, which this version "
                                       f"does not have (it has {sorted(EXTRACTORS)}); refit with `holmes cascade fit`")
    c = Cascade(stages, CostTable(doc["costs"]), doc["budgets_ms"], doc["grid_step"], doc["max_ick0"], doc["min_ick1"],
                doc.get("max_miss_rate"))  # absent before v0008: no bound
    c.set_thresholds(doc["thresholds_"])
    return FittedCascade(c, joblib.load(mfile), EnsembleRef.from_dict(doc["ensemble"]), doc.get("info", {}), version)
