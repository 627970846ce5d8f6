"""Gate validation and the cascade's control flow on hand-set gates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.errors import InvalidFieldError
from unfold import Cascade, CostTable, Gate, Rung, Stage

COSTS = CostTable({"a": {"ms": 1.0}, "b": {"ms": 10.0}, "c": {"ms": 100.0, "macs": 5e6}, "a2": {"ms": 0.5}})
STAGES = [Stage("s1", (Rung("a", ("a",)), Rung("b", ("b",)), Rung("c", ("c",)))),
          Stage("s2", (Rung("a2", ("a", "a2")), Rung("c", ("c",))), alarm_types=("Ventricular_Tachycardia",))]


class TestGateValidation:
    @pytest.mark.parametrize("lo,hi,field", [(-0.1, 0.5, "thresholds_[lo]"), (0.2, 1.5, "thresholds_[hi]"),
                                             (math.nan, 0.5, "thresholds_[lo]"), (0.2, math.inf, "thresholds_[hi]"),
                                             ("0.2", 0.5, "thresholds_[lo]")])
    def test_outside_unit_interval_rejected(self, lo, hi, field):
        with pytest.raises(InvalidFieldError) as e:
            Gate(lo, hi)
        assert e.value.field == field
        assert "[0, 1]" in e.value.rule
        assert str(e.value.value) == str(lo if field.endswith("[lo]") else hi)

    def test_ick0_above_ick1_rejected(self):
        with pytest.raises(InvalidFieldError) as e:
            Gate(0.8, 0.3)
        assert e.value.field == "thresholds_[lo]" and e.value.value == 0.8
        assert "may not exceed the ICK1 cut-off" in str(e.value)

    def test_set_thresholds_rejects_bad_dicts_and_shapes(self):
        c = Cascade(STAGES, COSTS)
        with pytest.raises(InvalidFieldError) as e:
            c.set_thresholds([[{"lo": 0.9, "hi": 0.1}, Gate(0, 1), Gate.final(0.5)], [Gate(0, 1), Gate.final(0.5)]])
        assert e.value.field == "thresholds_[lo]"
        with pytest.raises(InvalidFieldError) as e:
            c.set_thresholds([[Gate(0, 1), Gate.final(0.5)], [Gate(0, 1), Gate.final(0.5)]])
        assert e.value.field == "thresholds_[0]"
        with pytest.raises(InvalidFieldError) as e:
            c.set_thresholds([[Gate(0, 1), Gate(0, 1), Gate(0.2, 0.6)], [Gate(0, 1), Gate.final(0.5)]])
        assert e.value.field == "thresholds_[0][2]"

    def test_budget_and_cost_validation(self):
        with pytest.raises(InvalidFieldError) as e:
            Cascade(STAGES, COSTS, budgets_ms=[-1.0, 2.0])
        assert e.value.field == "budgets_ms"
        with pytest.raises(InvalidFieldError) as e:
            CostTable({"x": {"ms": -3.0}})
        assert e.value.field == "costs[x].ms"


class TestControlFlow:
    def test_all_idk_stage_ends_at_last_rung(self):
        rng = np.random.default_rng(0)
        n = 50
        probs = [[rng.uniform(0.01, 0.99, n) for _ in range(3)], [rng.uniform(0.01, 0.99, n) for _ in range(2)]]
        c = Cascade(STAGES, COSTS).set_thresholds([[Gate(0.0, 1.0), Gate(0.0, 1.0), Gate.final(0.4)],
                                                   [Gate(0.0, 1.0), Gate.final(0.5)]])
        r = c.predict(probs, ["Tachycardia"] * n)
        assert all([d for _, d in p] == ["IDK", "IDK", "ICK1" if q >= 0.4 else "ICK0"] for p, q in zip(r.paths, probs[0][2]))
        assert r.positive.tolist() == (probs[0][2] >= 0.4).tolist()
        assert np.allclose(r.probability, probs[0][2]) and set(r.stage.tolist()) == {1}
        assert np.allclose(r.cost_ms, 111.0) and np.allclose(r.macs, 5e6)

    def test_stage_two_only_for_its_alarm_types_and_shared_costs_paid_once(self):
        probs = [[np.array([0.95, 0.95, 0.05]), np.zeros(3), np.zeros(3)], [np.array([0.5, 0.5, 0.5]), np.array([0.2, 0.9, 0.9])]]
        c = Cascade(STAGES, COSTS).set_thresholds([[Gate(0.1, 0.9), Gate(0.1, 0.9), Gate.final(0.5)],
                                                   [Gate(0.1, 0.9), Gate.final(0.5)]])
        r = c.predict(probs, ["Ventricular_Tachycardia", "Tachycardia", "Ventricular_Tachycardia"])
        assert r.paths[0] == [("s1/a", "ICK1"), ("s2/a2", "IDK"), ("s2/c", "ICK0")]
        assert (r.positive.tolist(), r.level.tolist(), r.stage.tolist()) == ([False, True, False], [1, 1, 0], [2, 1, 1])
        # window 0: a (1) + a2 (0.5, "a" already paid) + c (100)
        assert r.cost_ms.tolist() == [101.5, 1.0, 1.0]

    def test_offline_cost_accounting_sums_to_unit_costs(self):
        rng = np.random.default_rng(1)
        n = 200
        probs = [[rng.uniform(0, 1, n) for _ in range(3)], [rng.uniform(0, 1, n) for _ in range(2)]]
        at = rng.choice(["Tachycardia", "Ventricular_Tachycardia"], n).tolist()
        c = Cascade(STAGES, COSTS).set_thresholds([[Gate(0.3, 0.7), Gate(0.3, 0.7), Gate.final(0.5)], [Gate(0.3, 0.7), Gate.final(0.5)]])
        r = c.predict(probs, at)
        ran = {}
        for p in r.paths:
            comps = {comp for name, _ in p for st in STAGES for rg in st.rungs if f"{st.name}/{rg.name}" == name for comp in rg.components}
            for comp in comps:
                ran[comp] = ran.get(comp, 0) + 1
        assert math.isclose(r.cost_ms.sum(), sum(COSTS.ms(k) * v for k, v in ran.items()))
        assert math.isclose(r.macs.sum(), 5e6 * ran.get("c", 0))


class TestDocExamples:
    def test_module_examples_hold(self):
        import doctest

        import unfold.cascade
        import unfold.costs
        import unfold.gates

        for mod in (unfold.gates, unfold.cascade, unfold.costs):
            res = doctest.testmod(mod)
            assert res.failed == 0 and res.attempted > 0, mod.__name__


def _ick0_by_rung(result, y, stages) -> dict:
    """Per non-forced rung: (windows its gate answered ICK0, true alarms among them), read from the paths."""
    out = {f"{st.name}/{rg.name}": [0, 0] for st in stages for rg in st.rungs[:-1]}
    for path, t in zip(result.paths, y):
        for name, d in path:
            if d == "ICK0" and name in out:
                out[name][0] += 1
                out[name][1] += int(t)
    return out


class TestMissBound:
    """An ICK0 cut-off is admissible only where its ICK0 answers hold at most ``max_miss_rate`` true alarms."""

    @staticmethod
    def _data(seed=0, n=600):
        rng = np.random.default_rng(seed)
        y = rng.random(n) < 0.35
        at = rng.choice(["Tachycardia", "Ventricular_Tachycardia"], n)
        noisy = lambda s: 1.0 / (1.0 + np.exp(-(3.0 * (y - 0.4) + rng.normal(0.0, s, n))))  # noqa: E731  (cheap rungs: noisier)
        probs = [[noisy(2.0), noisy(1.5), noisy(0.7)], [noisy(2.0), noisy(0.7)]]
        return probs, [y, y & (at == "Ventricular_Tachycardia")], at, y

    @pytest.mark.parametrize("bound", [0.02, 0.05, 0.1])
    def test_tuned_gates_respect_the_bound_on_their_tuning_data(self, bound):
        probs, labels, at, y = self._data()
        free = Cascade(STAGES, COSTS, [10.0, 5.0]).fit(probs, labels, at)
        worst_free = max(m / n for n, m in _ick0_by_rung(free.predict(probs, at), y, STAGES).values() if n)
        assert worst_free > bound  # without the bound the tuner does answer ICK0 where more true alarms hide
        c = Cascade(STAGES, COSTS, [10.0, 5.0], max_miss_rate=bound).fit(probs, labels, at)  # the bound is hard, budgets give way
        counts = _ick0_by_rung(c.predict(probs, at), y, STAGES)
        assert sum(n for n, _ in counts.values()) > 0  # the cheap rungs still answer some windows ICK0
        for name, (n, m) in counts.items():
            assert m <= bound * n + 1e-9, (name, n, m)
        for rep in c.fit_report_:  # the tuner's own account agrees and says so
            assert rep["meets_miss_bound"] and rep["max_miss_rate"] == bound
            assert all(a["miss_rate"] <= bound + 1e-12 for a in rep["ick0"])
        assert {f"{st.name}/{STAGES[s].rungs[a['rung']].name}": (a["ick0"], a["true_alarms"])
                for s, (st, rep) in enumerate(zip(STAGES, c.fit_report_)) for a in rep["ick0"]} == {k: tuple(v) for k, v in counts.items()}

    def test_bound_that_no_cut_off_meets_is_reported(self):
        probs, labels, at, y = self._data(1, 200)
        probs[0][0] = np.where(y, 0.0, probs[0][0])  # the first rung gives p = 0 to every true alarm: even lo = 0 misses
        c = Cascade(STAGES, COSTS, [None, None], max_miss_rate=0.01).fit(probs, labels, at)
        assert c.fit_report_[0]["meets_miss_bound"] is False and c.fit_report_[0]["max_miss_rate"] == 0.01

    @pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan, math.inf, "0.05", True])
    def test_bad_bound_is_a_typed_error(self, bad):
        with pytest.raises(InvalidFieldError) as e:
            Cascade(STAGES, COSTS, max_miss_rate=bad)
        assert e.value.field == "max_miss_rate" and "[0, 1)" in e.value.rule
        assert e.value.value is bad or str(e.value.value) == str(bad)
