"""Cost of the cascade's compute components: measured milliseconds per window and multiply-accumulates.

A component is one piece of compute a rung runs: a feature extractor (``quick_features``, ``features``),
a model on feature rows, or the ensemble service. Rungs list the components they need; a window pays a
component once however many rungs use it. Costs are per window at the batch size the stream uses (64):
``ms`` is the measured median (extractors, rung models and the in-process ensemble, one thread),
``macs`` counts network multiply-accumulates (0 for feature code and scikit-learn models, as in the
registry's profiles).

>>> t = CostTable({"quick_features": {"ms": 0.8}, "ensemble": {"ms": 60.0, "macs": 2.0e7}})
>>> t.ms("ensemble"), t.macs("quick_features")
(60.0, 0.0)
"""

from __future__ import annotations

import math

from models.errors import InvalidFieldError


class CostTable:
    def __init__(self, components: dict[str, dict]):
        self.components: dict[str, dict] = {}
        for name, c in components.items():
            unknown = set(c) - {"ms", "macs", "note"}
            if unknown:
                raise InvalidFieldError(f"costs[{name}]", "has unknown keys", sorted(unknown), ["ms", "macs", "note"])
            ms, macs = c.get("ms"), c.get("macs", 0.0)
            for field, v in (("ms", ms), ("macs", macs)):
                if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise InvalidFieldError(f"costs[{name}].{field}", "must be a finite number >= 0", v)
            self.components[name] = {"ms": float(ms), "macs": float(macs), **({"note": c["note"]} if "note" in c else {})}

    def _get(self, name: str) -> dict:
        if name not in self.components:
            raise InvalidFieldError("component", "must have a measured cost in the cost table", name, sorted(self.components))
        return self.components[name]

    def ms(self, name: str) -> float:
        return self._get(name)["ms"]

    def macs(self, name: str) -> float:
        return self._get(name)["macs"]

    def to_dict(self) -> dict:
        return {k: dict(v) for k, v in self.components.items()}
