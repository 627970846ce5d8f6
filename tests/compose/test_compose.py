"""Composer: scoring from OOF predictions, the search methods, the latency model, the plan and the policy."""

from __future__ import annotations

import numpy as np
import pytest

from holmes.commands.compose import DEFAULT_PROFILE
from holmes.compose import Evaluator, Plan, batch_auroc, compose, ensemble_prob, nested_score, search
from holmes.policy import SlackPolicy
from holmes.queueing import LatencyModel, Load, latency_at_load
from models.errors import InvalidFieldError
from models.metrics import auroc, best_threshold, challenge_score

LOAD = Load(beds=64)
MODEL = LatencyModel()


class TestScoring:
    def test_batch_auroc_matches_reference(self, table):
        rng = np.random.default_rng(1)
        masks = rng.random((20, table.n_members)) < 0.4
        masks[:, 0] = True
        got = Evaluator(table).auroc(masks)
        want = [auroc(table.y, ensemble_prob(table, m)) for m in masks]
        np.testing.assert_allclose(got, want, atol=1e-12)

    def test_ties_get_average_ranks(self):
        assert batch_auroc(np.array([[0.5, 0.5, 0.5, 0.5]]), np.array([0, 1, 0, 1]))[0] == 0.5

    def test_nested_score_thresholds_come_from_other_folds(self, table):
        mask = np.zeros(table.n_members, bool)
        mask[[3, 7, 11]] = True
        got = nested_score(table, mask)
        p = table.oof[mask].mean(0)
        pred = np.zeros(len(p), bool)
        for k in np.unique(table.folds):
            te = table.folds == k
            pred[te] = p[te] >= best_threshold(table.y[~te], p[~te])
        assert got["score"] == pytest.approx(challenge_score(table.y, pred))
        assert got["auroc"] == pytest.approx(auroc(table.y, p))
        assert got["threshold"] == pytest.approx(best_threshold(table.y, p))

    def test_unknown_member_named(self, table):
        with pytest.raises(InvalidFieldError, match="ensemble .*nope"):
            table.index(["m00", "nope"])


class TestSearch:
    @pytest.mark.parametrize("budget_ms", [50, 100, 250, 500, 1000])
    def test_genetic_close_to_exhaustive(self, table, budget_ms):
        ex = search(table, budget_ms, LOAD, MODEL, "exhaustive")
        ga = search(table, budget_ms, LOAD, MODEL, "genetic")
        assert ex.found and ga.found
        assert ga.latency_ms <= budget_ms and ex.latency_ms <= budget_ms
        assert ga.auroc >= ex.auroc - 0.005
        assert ga.n_evaluated < ex.n_evaluated or ex.n_evaluated < 500

    @pytest.mark.parametrize("method", ["greedy_accuracy", "greedy_latency", "random"])
    def test_baselines_feasible_and_not_better_than_exhaustive(self, table, method):
        ex = search(table, 250, LOAD, MODEL, "exhaustive")
        r = search(table, 250, LOAD, MODEL, method)
        assert r.found and r.latency_ms <= 250
        assert r.auroc <= ex.auroc + 1e-12

    def test_nothing_fits(self, table):
        r = search(table, 1.0, LOAD, MODEL, "genetic")
        assert not r.found

    def test_exhaustive_refuses_large_zoo(self, table):
        with pytest.raises(InvalidFieldError, match="zoo size"):
            search(table, 100, LOAD, MODEL, "exhaustive", max_members=10)

    def test_bad_method_and_budget(self, table):
        with pytest.raises(InvalidFieldError, match="method"):
            search(table, 100, LOAD, MODEL, "annealing")
        with pytest.raises(InvalidFieldError, match="budget_ms"):
            search(table, -5, LOAD, MODEL)


class TestLatencyModel:
    def test_service_time_formula(self, table):
        mask = np.zeros(table.n_members, bool)
        mask[[1, 2]] = True
        s = table.latency_at(64)[[1, 2]]
        want = MODEL.overhead_ms + 2 * MODEL.per_member_ms + max(s.max(), s.sum() / 2)
        assert MODEL.service_ms(table, mask[None], 64)[0] == pytest.approx(want)

    def test_interpolation_and_extrapolation(self, table):
        lat = table.latency_ms[0]
        assert table.latency_at(8)[0] == pytest.approx(lat[1])
        assert table.latency_at(36)[0] == pytest.approx((lat[1] + lat[2]) / 2)
        assert table.latency_at(120)[0] == pytest.approx(lat[2] + (lat[2] - lat[1]) / 56 * 56)

    def test_md1_mean_wait(self):
        # M/D/1 at rho = 0.5, S = 100 ms: Wq = rho S / (2 (1 - rho)) = 50 ms; p99 wait = (Wq/rho) ln(rho/0.01)
        out = latency_at_load(np.array([100.0]), Load(64, rate_hz=5.0, arrival="poisson"), tail_factor=1.0)
        assert out["rho"][0] == pytest.approx(0.5)
        assert out["p99_ms"][0] == pytest.approx(100 + 100 * np.log(50))

    def test_overload_is_infinite(self):
        out = latency_at_load(np.array([1500.0]), Load(64))
        assert np.isinf(out["p99_ms"][0])

    def test_periodic_batches_over_64_beds(self):
        load = Load(256)
        assert load.requests_per_tick == 4 and load.batch == 64
        out = latency_at_load(np.array([100.0]), load, tail_factor=1.0)
        assert out["p99_ms"][0] == pytest.approx(100 + 100 * 2)

    def test_bad_load(self):
        with pytest.raises(InvalidFieldError, match="beds"):
            Load(0)
        with pytest.raises(InvalidFieldError, match="arrival"):
            Load(4, arrival="bursty")


class TestPlanAndPolicy:
    def test_compose_plan_roundtrip(self, table, tmp_path):
        plan = compose(table, [50, 250, 1000], LOAD, MODEL, progress=False)
        assert [e.budget_ms for e in plan.ensembles] == [50, 250, 1000]
        for e in plan.ensembles:
            assert e.p99_ms <= e.budget_ms and 0.5 < e.auroc <= 1.0 and 0 <= e.score <= 100
        aucs = [e.auroc for e in plan.ensembles]
        assert aucs == sorted(aucs)  # more budget never chooses a worse ensemble
        back = Plan.load(plan.save(tmp_path / "plan.json"))
        assert back.ensembles == plan.ensembles and back.members == plan.members

    def test_policy_falls_to_cheaper_under_queueing(self, table):
        plan = compose(table, [50, 250, 1000], LOAD, MODEL, progress=False)
        pol = SlackPolicy(plan)
        relaxed = pol.choose(64, deadline_ms=1000)
        assert relaxed.fits and relaxed.spec.name == "budget_1000ms"
        burst = pol.choose(64, deadline_ms=1000, queue_ms=900)
        assert burst.fits and burst.predicted_ms <= 100 and burst.spec.auroc < relaxed.spec.auroc
        hopeless = pol.choose(64, deadline_ms=5)
        assert not hopeless.fits and hopeless.predicted_ms == min(pol.predict_ms(e, 64) for e in plan.ensembles)

    def test_policy_ranks_rows_by_their_nested_score_not_auroc(self):
        """Served plan v0004: the 6-member 500 ms row has the best AUROC (0.954) but a nested score of 73.8; the
        features-typed rows score 78.9. With time for anything, the policy picks the most accurate by nested score."""
        from pathlib import Path

        plan = Plan.load(Path(__file__).resolve().parents[2] / "deploy" / "plan.json")
        by_auroc = max(plan.ensembles, key=lambda e: e.auroc)
        best = max(plan.ensembles, key=lambda e: e.score)
        assert by_auroc.name != best.name and by_auroc.score < best.score  # the case this test is about
        pol = SlackPolicy(plan)
        assert pol.menu[0].score == best.score and [e.score for e in pol.menu] == sorted((e.score for e in pol.menu), reverse=True)
        c = pol.choose(64, deadline_ms=10_000)
        assert c.fits and c.spec.score == best.score and c.spec.name != by_auroc.name

    def test_policy_routes_around_busy_members(self, table):
        plan = compose(table, [100, 1000], LOAD, MODEL, progress=False)
        pol = SlackPolicy(plan)
        big, small = plan.get("budget_1000ms"), plan.get("budget_100ms")
        assert not set(big.members) & set(small.members)
        busy = {m: 950.0 for m in big.members}  # the best ensemble's replicas are busy for 950 ms
        c = pol.choose(64, deadline_ms=1000, backlog_ms=busy)
        assert c.spec.name == "budget_100ms" and c.fits
        assert pol.choose(64, deadline_ms=1000, backlog_ms={m: 950.0 for m in small.members}).spec.name == "budget_1000ms"

    def test_verdict_floor_is_never_undercut(self, table):
        plan = compose(table, [50, 250, 1000], LOAD, MODEL, progress=False)
        pol = SlackPolicy(plan)
        floor = plan.floor()
        assert floor.score == max(e.score for e in plan.ensembles)  # the most accurate row on nested CV
        strength = {e.name: (e.score, e.auroc) for e in plan.ensembles}
        for deadline, queue in ((1000, 0.0), (1000, 900.0), (5, 0.0)):
            c = pol.choose(64, deadline_ms=deadline, queue_ms=queue, floor="auto")
            assert strength[c.spec.name] >= strength[floor.name]  # never weaker than the floor
        hopeless = pol.choose(64, deadline_ms=5, floor="auto")
        assert not hopeless.fits and hopeless.spec.name == floor.name  # late rather than weaker: flagged, not hidden
        cheapest = pol.choose(64, deadline_ms=5)  # without a floor (routine windows) the cheapest row is taken
        assert cheapest.predicted_ms <= hopeless.predicted_ms
        named = plan.ensembles[0].name
        assert strength[pol.choose(64, deadline_ms=1000, floor=named).spec.name] >= strength[named]
        with pytest.raises(InvalidFieldError, match="ensemble"):
            pol.choose(64, deadline_ms=100, floor="nope")

    def test_zoo_rule_plan_needs_member_kinds(self, table):
        from holmes.compose.plan import EnsembleSpec

        good = Plan((EnsembleSpec("z", tuple(table.names[:3]), rule="zoo"),), {n: {"1": 1.0} for n in table.names[:3]},
                    kinds={n: "cnn" for n in table.names[:3]})
        assert Plan.from_dict(good.to_dict()).ensembles[0].rule == "zoo"
        d = good.to_dict()
        d["kinds"] = {}
        with pytest.raises(InvalidFieldError, match="kinds"):
            Plan.from_dict(d)
        d = good.to_dict()
        d["ensembles"][0]["rule"] = "median"
        with pytest.raises(InvalidFieldError, match="rule"):
            Plan.from_dict(d)

    def test_policy_learns_slower_machine(self, table):
        plan = compose(table, [250, 1000], LOAD, MODEL, progress=False)
        pol = SlackPolicy(plan, ewma_alpha=0.5)
        name = plan.ensembles[-1].name
        before = pol.predict_ms(plan.get(name), 64)
        for _ in range(10):
            pol.observe(name, 64, 3 * before)
        assert pol.predict_ms(plan.get(name), 64) == pytest.approx(3 * before, rel=0.01)

    def test_hopeless_deadline_takes_the_cheapest_on_the_profiles(self):
        """Corrections learned at small batches (a fixed per-request cost reads as a slow machine) must not make a
        two-member row rank cheaper than its own members when nothing fits."""
        from holmes.compose.plan import EnsembleSpec

        plan = Plan((EnsembleSpec("both", ("a", "b"), score=60.0), EnsembleSpec("a_only", ("a",), score=58.0),
                     EnsembleSpec("b_only", ("b",), score=50.0)), {"a": {"1": 1.0, "64": 20.0}, "b": {"1": 1.0, "64": 22.0}})
        pol = SlackPolicy(plan)
        for name in ("a_only", "b_only"):
            for _ in range(10):
                pol.observe(name, 1, 40.0)  # small requests, each mostly the call's own cost
        assert pol.predict_ms(plan.get("both"), 64) < pol.predict_ms(plan.get("a_only"), 64)  # the corrections invert them
        c = pol.choose(64, deadline_ms=0.5)
        assert not c.fits and c.spec.name == "a_only"
        assert c.predicted_ms == pytest.approx(pol.predict_ms(plan.get("a_only"), 64))  # still the corrected prediction

    def test_policy_rejects_bad_deadline_and_unknown_ensemble(self, table):
        pol = SlackPolicy(compose(table, [250], LOAD, MODEL, progress=False))
        for bad in (-1.0, 0.0, float("nan"), float("inf")):
            with pytest.raises(InvalidFieldError, match="deadline_ms"):
                pol.choose(64, deadline_ms=bad)
        with pytest.raises(InvalidFieldError, match="ensemble"):
            pol.choose(64, deadline_ms=100, ensemble="nope")


class TestTableFromProfiles:
    def _profiles(self, table, n=3):
        return [{"name": table.names[j], "kind": "cnn", "latency_ms": {str(b): float(v) for b, v in zip(table.batch_sizes, table.latency_ms[j])},
                 "oof": {"records": list(table.records), "prob": table.oof[j].tolist(), "label": table.y.tolist(), "fold": table.folds.tolist(), "seed": 0}}
                for j in range(n)]

    def test_roundtrip(self, table):
        from holmes.compose import ZooTable

        t = ZooTable.from_profiles(self._profiles(table))
        order = np.argsort(table.records)
        np.testing.assert_allclose(t.oof, table.oof[:3][:, order])
        assert t.y.tolist() == table.y[order].tolist() and t.folds.tolist() == table.folds[order].tolist()

    def test_disagreeing_folds_refused(self, table):
        from holmes.compose import ZooTable

        ps = self._profiles(table)
        ps[1]["oof"]["fold"] = [(f + 1) % 5 for f in ps[1]["oof"]["fold"]]
        with pytest.raises(InvalidFieldError, match="same folds"):
            ZooTable.from_profiles(ps)

    def test_missing_oof_refused(self, table):
        from holmes.compose import ZooTable

        ps = self._profiles(table)
        del ps[2]["oof"]
        with pytest.raises(InvalidFieldError, match="m02"):
            ZooTable.from_profiles(ps)


class TestNestedPlanFigures:
    def test_a_plan_row_states_the_nested_score(self, table):
        from holmes.compose.composer import nested_selection_score
        from holmes.compose.scoring import ensemble_prob, nested_score

        plan = compose(table, [250], LOAD, MODEL, progress=False)
        row = plan.ensembles[0]
        nested = nested_selection_score(table, 250, LOAD, MODEL)
        assert row.score == nested["score"] and row.auroc == nested["auroc"] and row.tpr == nested["tpr"]
        mask = np.isin(table.names, row.members)
        assert row.score_in_sample == nested_score(table, mask)["score"]  # the subset on what it was chosen on
        # the map the service publishes with: fitted on the subset's OOF mean, better calibrated there, same ranking
        from models.calibration import Calibrator, ece
        from models.metrics import auroc

        p = ensemble_prob(table, mask)
        cal = Calibrator.from_dict(row.calibration).transform(p)
        assert row.calibration["method"] != "none" and ece(table.y, cal) < ece(table.y, p)
        assert auroc(table.y, cal) == pytest.approx(auroc(table.y, p), abs=1e-12)

    def test_a_fold_is_scored_without_its_own_labels(self, table):
        """Flip fold 0's labels: its verdicts do not move (the subset and threshold came from the other folds)."""
        from dataclasses import replace

        from holmes.compose.composer import nested_selection

        k = table.folds == 0
        prob, pred = nested_selection(table, 250, LOAD, MODEL)
        prob2, pred2 = nested_selection(replace(table, y=np.where(k, 1 - table.y, table.y)), 250, LOAD, MODEL)
        np.testing.assert_array_equal(prob[k], prob2[k])
        np.testing.assert_array_equal(pred[k], pred2[k])


class TestServiceProfile:
    """`holmes compose` takes its latency from the profile measured on the running service, and refuses a stale one."""

    def _profile(self, tmp_path, **change):
        import json

        d = json.loads(DEFAULT_PROFILE.read_text())
        d.update(change)
        p = tmp_path / "profile.json"
        p.write_text(json.dumps(d))
        return p

    def test_the_committed_profile_is_the_services_and_covers_the_zoo(self):
        from holmes.commands.compose import service_latency_model
        from holmes.compose import ZooTable

        table, reg = ZooTable.from_registry()
        members = [n for n, k in zip(table.names, table.kinds) if k != "ensemble"]
        model = service_latency_model(DEFAULT_PROFILE, reg, members)
        assert set(members) <= set(model.member_ms) and model.overhead_ms > 0

    @pytest.mark.parametrize("change,needle", [
        ({"registry": {"version": "v0001"}}, "stale: measured on registry v0001"),
        ({"measured_on": "in process"}, "measured on the running deployment"),
    ])
    def test_stale_profile_is_refused_naming_the_file(self, tmp_path, capsys, change, needle):
        from holmes.cli import main

        p = self._profile(tmp_path, **change)
        assert main(["compose", "--budget-ms", "250", "--latency-model", str(p), "--out", str(tmp_path / "plan.json")]) == 2
        err = capsys.readouterr().err
        assert needle in err and str(p) in err and not (tmp_path / "plan.json").exists()

    def test_profile_missing_a_member_is_refused(self, tmp_path, capsys):
        import json

        from holmes.cli import main

        d = json.loads(DEFAULT_PROFILE.read_text())
        gone = sorted(d["latency_model"]["member_ms"])[0]
        del d["latency_model"]["member_ms"][gone]
        p = tmp_path / "profile.json"
        p.write_text(json.dumps(d))
        assert main(["compose", "--budget-ms", "250", "--latency-model", str(p), "--out", str(tmp_path / "plan.json")]) == 2
        assert gone in capsys.readouterr().err
