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
