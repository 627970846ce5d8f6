"""The zoo as the composer sees it: one row per member (latency per batch size, out-of-fold predictions).

Every member's out-of-fold (OOF) predictions come from the same record-grouped folds
(``models.data.cv_folds(infos, seed=...)``), so the OOF prediction of any subset's mean-probability ensemble
is the mean of its members' OOF columns: no model is re-run to score an ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from models.errors import InvalidFieldError

BATCH_SIZES = (1, 8, 64)


@dataclass(frozen=True)
class ZooTable:
    """Members' profiles aligned on the same records.

    names        member names, M
    kinds        member kinds ("cnn", "features", ...), M
    latency_ms   float [M, len(batch_sizes)]: service time of one call at each batch size (ms)
    batch_sizes  the batch sizes of ``latency_ms`` columns
    oof          float [M, N]: out-of-fold P(true alarm) per member and record
    y            int [N]: 1 = true alarm
    folds        int [N]: fold id of each record (the folds the OOF predictions came from)
    records      record names, N
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    latency_ms: np.ndarray
    batch_sizes: tuple[int, ...]
    oof: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    records: tuple[str, ...]

    @property
    def n_members(self) -> int:
        return len(self.names)

    def index(self, names: Sequence[str]) -> list[int]:
        out = []
        for n in names:
            if n not in self.names:
                raise InvalidFieldError("ensemble", "must name members of the zoo", n, self.names)
            out.append(self.names.index(n))
        return out

    def subset(self, names: Sequence[str]) -> "ZooTable":
        """The same table restricted to some members (for a sub-zoo)."""
        idx = self.index(names)
        return ZooTable(
            tuple(self.names[i] for i in idx), tuple(self.kinds[i] for i in idx), self.latency_ms[idx],
            self.batch_sizes, self.oof[idx], self.y, self.folds, self.records,
        )

    def take(self, rows: np.ndarray) -> "ZooTable":
        """The same members restricted to some records (bool or index ``rows``): a training part of the folds."""
        rows = np.asarray(rows)
        recs = np.asarray(self.records, dtype=object)[rows]
        return ZooTable(self.names, self.kinds, self.latency_ms, self.batch_sizes, self.oof[:, rows], self.y[rows],
                        self.folds[rows], tuple(recs.tolist()))

    def latency_at(self, batch: float) -> np.ndarray:
        """Per-member service time (ms) of one call with ``batch`` windows: piecewise linear in batch size,
        extrapolated beyond the largest profiled batch with the last segment's slope."""
        bs = np.asarray(self.batch_sizes, dtype=np.float64)
        lat = self.latency_ms
        if batch <= bs[-1]:
            return np.array([np.interp(batch, bs, row) for row in lat])
        slope = (lat[:, -1] - lat[:, -2]) / (bs[-1] - bs[-2])
        return lat[:, -1] + slope * (batch - bs[-1])

    @classmethod
    def from_profiles(cls, profiles: Sequence[Mapping], labels: Mapping[str, int] | None = None,
                      folds: Mapping[str, int] | None = None) -> "ZooTable":
        """Build from registry profiles (``{"name","kind","latency_ms":{"1","8","64"},"oof":{"records","prob",
        "label","fold"}}``).

        ``labels`` / ``folds`` (record name -> label / fold id) default to the ones the profiles carry; every
        member must agree on them (the same folds). Records are those every member has an OOF prediction for;
        a member without OOF predictions is refused by name.
        """
        if not profiles:
            raise InvalidFieldError("profiles", "must contain at least one member", 0)
        labels = dict(labels) if labels is not None else {}
        folds = dict(folds) if folds is not None else {}
        given_labels, given_folds = bool(labels), bool(folds)
        common: set[str] | None = None
        for p in profiles:
            oof = p.get("oof") or {}
            if not oof.get("records") or len(oof.get("prob", ())) != len(oof["records"]):
                raise InvalidFieldError(f"profiles[{p.get('name')}].oof", "must hold one out-of-fold prediction per record", None)
            for key, table, given in (("label", labels, given_labels), ("fold", folds, given_folds)):
                if given or key not in oof:
                    continue
                for r, v in zip(oof["records"], oof[key]):
                    if table.setdefault(r, int(v)) != int(v):
                        raise InvalidFieldError(f"profiles[{p['name']}].oof.{key}", "must agree with the other members (same folds)", f"{r}: {v} vs {table[r]}")
            recs = set(oof["records"])
            common = recs if common is None else common & recs
        records = tuple(sorted(r for r in (common or set()) if labels.get(r) is not None and r in folds))
        if len(records) < 10:
            raise InvalidFieldError("profiles.oof.records", "must share at least 10 records with labels and folds", len(records))
        batch_sizes = tuple(sorted(int(b) for b in profiles[0]["latency_ms"]))
        names, kinds, lat, oof_rows = [], [], [], []
        for p in profiles:
            pos = {r: i for i, r in enumerate(p["oof"]["records"])}
            prob = np.asarray(p["oof"]["prob"], dtype=np.float64)
            oof_rows.append(prob[[pos[r] for r in records]])
            try:
                lat.append([float(p["latency_ms"][str(b)]) for b in batch_sizes])
            except KeyError as e:
                raise InvalidFieldError(f"profiles[{p['name']}].latency_ms", f"must have batch sizes {batch_sizes}", list(p["latency_ms"])) from e
            names.append(str(p["name"]))
            kinds.append(str(p.get("kind", "?")))
        return cls(
            tuple(names), tuple(kinds), np.asarray(lat), batch_sizes, np.vstack(oof_rows),
            np.array([int(labels[r]) for r in records]), np.array([int(folds[r]) for r in records]), records,
        )

    @classmethod
    def from_registry(cls, path=None, version: str | None = None) -> tuple["ZooTable", dict]:
        """The table of a registry version, and ``{"path", "version"}`` to record where it came from."""
        from models.registry import Registry

        reg = Registry(path)
        v = version or reg.latest()
        return cls.from_profiles(reg.profiles(v)), {"path": str(reg.path), "version": v}
