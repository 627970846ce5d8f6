"""The cascade: vertical stages of binary classifiers, each a horizontal ladder of rungs from cheap to costly.

A window enters stage 1 at its cheapest rung. A rung's gate answers ICK0 (stop: negative), IDK (next,
costlier rung of the stage) or ICK1 (next stage; positive at the last stage that applies to the window).
The last rung of a stage is forced (no IDK). A stage may apply to some alarm types only (stage 2,
"ventricular arrhythmia", runs for ventricular alarms); a window ICK1 at its last applicable stage ends
positive there.

Rungs are evaluated lazily by a *runner* (``runner.rung(stage, rung, idx) -> (prob, ms, macs)`` for the
windows ``idx``): ``OfflineRunner`` reads out-of-fold probabilities and charges unit costs from a
``CostTable``; ``unfold.live.LiveRunner`` runs the models on raw windows and charges measured time. A cost
component (a feature extractor, the ensemble service) shared by several rungs is paid once per window.

>>> import numpy as np
>>> from unfold.costs import CostTable
>>> st = [Stage("s1", (Rung("a", ("a",)), Rung("b", ("b",))))]
>>> c = Cascade(st, CostTable({"a": {"ms": 1.0}, "b": {"ms": 10.0}})).set_thresholds([[Gate(0.2, 0.8), Gate.final(0.5)]])
>>> probs = [[np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.7, 0.0])]]
>>> r = c.predict(probs, ["Tachycardia"] * 3)
>>> r.positive.tolist(), r.cost_ms.tolist(), r.paths[1]
([False, True, True], [1.0, 11.0, 1.0], [('s1/a', 'IDK'), ('s1/b', 'ICK1')])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from models.errors import InvalidFieldError

from .costs import CostTable
from .gates import DECISIONS, ICK0, ICK1, IDK, Gate


@dataclass(frozen=True)
class Rung:
    name: str
    components: tuple[str, ...]  # cost components it runs (each paid once per window)


@dataclass(frozen=True)
class Stage:
    name: str
    rungs: tuple[Rung, ...]
    alarm_types: tuple[str, ...] | None = None  # None: every window

    def applies(self, alarm_types: Sequence[str]) -> np.ndarray:
        at = np.asarray(alarm_types)
        return np.ones(len(at), dtype=bool) if self.alarm_types is None else np.isin(at, self.alarm_types)


@dataclass
class CascadeResult:
    """Per window: the stage it ended at (1-based), the probability of the deciding rung, the verdict,
    the level reached (0 negative, s = ICK1 at stage s), the path [(stage/rung, decision)], and cost."""

    stage: np.ndarray
    probability: np.ndarray
    positive: np.ndarray
    level: np.ndarray
    paths: list[list[tuple[str, str]]]
    cost_ms: np.ndarray
    macs: np.ndarray
    stopped: dict[str, int] = field(default_factory=dict)  # "stage/rung:DECISION" -> windows

    def __len__(self) -> int:
        return len(self.stage)


class OfflineRunner:
    """Rung probabilities from arrays ``probs[s][r]`` [N]; costs from the cost table, shared components once."""

    def __init__(self, stages: Sequence[Stage], probs, costs: CostTable):
        self.stages, self.probs, self.costs = stages, probs, costs
        n = len(probs[0][0]) if probs and probs[0] else 0
        self.paid = [set() for _ in range(n)]

    def rung(self, s: int, r: int, idx: np.ndarray):
        comps = self.stages[s].rungs[r].components
        ms = np.zeros(len(idx))
        macs = np.zeros(len(idx))
        for j, i in enumerate(idx):
            new = [c for c in comps if c not in self.paid[i]]
            self.paid[i].update(new)
            ms[j] = sum(self.costs.ms(c) for c in new)
            macs[j] = sum(self.costs.macs(c) for c in new)
        return np.asarray(self.probs[s][r], dtype=np.float64)[idx], ms, macs


def check_miss_rate(field: str, value) -> float | None:
    """None (no bound) or a finite number in [0, 1): the highest admissible fraction of true alarms among a
    rung's ICK0 answers (1 would admit every cut-off, i.e. no bound: pass None for that)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InvalidFieldError(field, "must be a number in [0, 1) (a fraction of the ICK0 answers) or none", value)
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v < 1.0:
        raise InvalidFieldError(field, "must be in [0, 1) (a fraction of the ICK0 answers) or none", value)
    return v


def check_thresholds(stages: Sequence[Stage], thresholds) -> list[list[Gate]]:
    """Validate a nested list of gates (or {"lo", "hi"} dicts) against the stages; the last rung is forced."""
    if not isinstance(thresholds, (list, tuple)) or len(thresholds) != len(stages):
        raise InvalidFieldError("thresholds_", f"must hold one list of gates per stage ({len(stages)})", thresholds)
    out = []
    for s, (stage, gates) in enumerate(zip(stages, thresholds)):
        if not isinstance(gates, (list, tuple)) or len(gates) != len(stage.rungs):
            raise InvalidFieldError(f"thresholds_[{s}]", f"must hold one gate per rung of {stage.name} ({len(stage.rungs)})", gates)
        row = []
        for r, g in enumerate(gates):
            if isinstance(g, dict):
                g = Gate.from_dict(g)
            if not isinstance(g, Gate):
                raise InvalidFieldError(f"thresholds_[{s}][{r}]", "must be a Gate or a {lo, hi} dict", g)
            last = r == len(gates) - 1
            if last and not g.forced:
                if g.lo != g.hi:
                    raise InvalidFieldError(f"thresholds_[{s}][{r}]", "of the last rung must have lo == hi (its decision threshold)", g)
                g = Gate.final(g.hi)
            row.append(g)
        out.append(row)
    return out


class Cascade:
    """Staged cascade with gates tuned for per-stage cost budgets (``fit``) or set by hand (``set_thresholds``).

    ``budgets_ms``: mean marginal compute per window that each stage may spend (ms), None = unbounded.
    ``max_ick0`` / ``min_ick1``: bounds on the gate cut-offs (an ICK0 cut-off may not exceed ``max_ick0``,
    an ICK1 cut-off may not be below ``min_ick1``), against gates fitted to a few training windows.
    ``max_miss_rate``: bound on the fraction of true alarms among each non-forced rung's ICK0 answers on the
    tuning data (``unfold.tuning``: an ICK0 cut-off is admissible only under it), None = no bound.
    """

    def __init__(self, stages: Sequence[Stage], costs: CostTable, budgets_ms: Sequence[float | None] | None = None,
                 grid_step: float = 0.05, max_ick0: float = 0.5, min_ick1: float = 0.3, max_miss_rate: float | None = None):
        if not stages:
            raise InvalidFieldError("stages", "must hold at least one stage", stages)
        for s in stages:
            if not s.rungs:
                raise InvalidFieldError("stages", f"stage {s.name} must hold at least one rung", s)
        self.stages = tuple(stages)
        self.costs = costs
        self.budgets_ms = list(budgets_ms) if budgets_ms is not None else [None] * len(stages)
        if len(self.budgets_ms) != len(stages):
            raise InvalidFieldError("budgets_ms", f"must hold one budget per stage ({len(stages)})", budgets_ms)
        for b in self.budgets_ms:
            if b is not None and not (np.isfinite(b) and b > 0):
                raise InvalidFieldError("budgets_ms", "must be > 0 ms (or None)", b)
        if not 0 < grid_step <= 0.5:
            raise InvalidFieldError("grid_step", "must be in (0, 0.5]", grid_step)
        self.grid_step = grid_step
        self.max_ick0 = max_ick0
        self.min_ick1 = min_ick1
        self.max_miss_rate = check_miss_rate("max_miss_rate", max_miss_rate)

    # ------------------------------------------------------------------ fitting
    def set_thresholds(self, thresholds) -> "Cascade":
        self.thresholds_ = check_thresholds(self.stages, thresholds)
        return self

    def fit(self, probs, labels, alarm_types: Sequence[str]) -> "Cascade":
        """Tune the gates stage by stage on out-of-fold ``probs[s][r]`` [N] with stage labels ``labels[s]`` [N]."""
        from .tuning import tune_stage

        n = len(alarm_types)
        at = np.asarray(alarm_types)
        gates: list[list[Gate]] = []
        positive = np.zeros(n, dtype=bool)  # verdict so far
        reach = np.ones(n, dtype=bool)
        runner = OfflineRunner(self.stages, probs, self.costs)
        # the label of a window's verdict: that of the last stage that applies to it
        verdict_y = np.asarray(labels[0]).astype(bool)
        for s, stage in enumerate(self.stages):
            verdict_y = np.where(stage.applies(at), np.asarray(labels[s]).astype(bool), verdict_y)
        self.fit_report_ = []
        for s, stage in enumerate(self.stages):
            idx = np.flatnonzero(reach & stage.applies(at))
            y = np.asarray(labels[s]).astype(bool)
            marg = self._marginal_costs(s, idx, runner)
            P = [np.asarray(probs[s][r], dtype=np.float64)[idx] for r in range(len(stage.rungs))]
            fixed = np.ones(n, dtype=bool)
            fixed[idx] = False
            row, rep = tune_stage(P, marg, y[idx], positive[fixed], verdict_y[fixed], self.budgets_ms[s], self.grid_step,
                                  self.max_ick0, self.min_ick1, self.max_miss_rate)
            gates.append(row)
            self.fit_report_.append({"stage": stage.name, "n": int(len(idx)), **rep})
            # run this stage with its gates to get who reaches the next one and what they already paid
            self.thresholds_ = gates + [[Gate.final(0.5)] * len(st.rungs) for st in self.stages[s + 1:]]
            res = self.run(OfflineRunner(self.stages[: s + 1], [p for p in probs[: s + 1]], self.costs), at, n_stages=s + 1)
            positive = res.positive.copy()
            reach = res.level == s + 1
            for i in range(n):
                runner.paid[i] = {c for (name, _) in res.paths[i] for c in self._rung(name).components}
        self.thresholds_ = gates
        return self

    def _rung(self, qualified: str) -> Rung:
        sname, rname = qualified.split("/", 1)
        return next(r for st in self.stages if st.name == sname for r in st.rungs if r.name == rname)

    def _marginal_costs(self, s: int, idx: np.ndarray, runner: OfflineRunner) -> np.ndarray:
        """[R, len(idx)]: ms each rung of stage s would add for each window, given what it already paid."""
        out = np.zeros((len(self.stages[s].rungs), len(idx)))
        for j, i in enumerate(idx):
            paid = set(runner.paid[i])
            for r, rung in enumerate(self.stages[s].rungs):
                new = [c for c in rung.components if c not in paid]
                out[r, j] = sum(self.costs.ms(c) for c in new)
                paid.update(new)
        return out

    # ------------------------------------------------------------------ prediction
    def predict(self, probs, alarm_types: Sequence[str]) -> CascadeResult:
        """Run the cascade on precomputed probabilities ``probs[s][r]`` [N] (offline evaluation)."""
        return self.run(OfflineRunner(self.stages, probs, self.costs), alarm_types)

    def run(self, runner, alarm_types: Sequence[str], n_stages: int | None = None) -> CascadeResult:
        if not hasattr(self, "thresholds_"):
            raise RuntimeError("this Cascade has no thresholds_: call fit() or set_thresholds() first")
        at = np.asarray(alarm_types)
        n = len(at)
        stages = self.stages[: n_stages or len(self.stages)]
        stage_out = np.zeros(n, dtype=np.int64)
        prob = np.full(n, np.nan)
        positive = np.zeros(n, dtype=bool)
        level = np.zeros(n, dtype=np.int64)
        paths: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        cost_ms, macs = np.zeros(n), np.zeros(n)
        stopped: dict[str, int] = {}
        active = np.ones(n, dtype=bool)
        applies = [st.applies(at) for st in stages]
        for s, stage in enumerate(stages):
            pending = np.flatnonzero(active & applies[s])
            for r, rung in enumerate(stage.rungs):
                if len(pending) == 0:
                    break
                p, ms, mc = runner.rung(s, r, pending)
                cost_ms[pending] += ms
                macs[pending] += mc
                d = self.thresholds_[s][r].decide(p)
                name = f"{stage.name}/{rung.name}"
                for i, di in zip(pending, d):
                    paths[i].append((name, DECISIONS[di]))
                for code in (ICK0, IDK, ICK1):
                    if (d == code).any():
                        stopped[f"{name}:{DECISIONS[code]}"] = stopped.get(f"{name}:{DECISIONS[code]}", 0) + int((d == code).sum())
                done = pending[d != IDK]
                prob[done] = p[d != IDK]
                stage_out[done] = s + 1
                neg = pending[d == ICK0]
                active[neg] = False
                positive[neg] = False
                pos = pending[d == ICK1]
                positive[pos] = True
                level[pos] = s + 1
                pending = pending[d == IDK]
            # windows this stage ended negative stay at level 0; ICK1 windows go on where the next stage applies
        return CascadeResult(stage_out, prob, positive, level, paths, cost_ms, macs, stopped)
