"""The report's CNN sections: built from the committed bench results, and their verdict on serving computed, not said."""

from __future__ import annotations

import json

from holmes.report import RESULTS, _json
from holmes.report_cnn import IDEAS, TESTS, cnn_members, served_tests


def _committed():
    return [(n, *_json(n)) for n in IDEAS], [(n, s, *_json(n)) for n, s in TESTS]


def test_recipe_table_has_every_variant_once_with_its_first_runs_figures(tmp_path):
    ideas, tests = _committed()
    first: dict = {}
    for name in IDEAS:
        for v, row in json.loads((RESULTS / f"{name}.json").read_text())["variants"].items():
            first.setdefault(v, row)
    recipes, served = cnn_members(tmp_path, ideas, tests)
    rows = {r[0]: r for r in recipes.table[1:]}
    assert set(rows) == set(first) | {"features-vote", "features-typed"}
    for v, row in first.items():
        assert rows[v][1] == f"{row['auroc']:.3f}"
        assert rows[v][2].startswith(f"{row['stacked_with_features_vote']['score']:.2f} +- ")
    best = max(first, key=lambda v: first[v]["auroc"])
    assert f"The strongest, {best}, reaches AUROC {first[best]['auroc']:.3f}" in recipes.text
    assert (tmp_path / "cnn_tried.png").stat().st_size > 10_000
    n_rules = sum(len(json.loads((RESULTS / f"{n}.json").read_text())["summary"]) - 1 for n, _ in TESTS)
    assert len(served.table) == 1 + n_rules


def _doc(first_seed: int, diffs: list[float]) -> dict:
    ref = {"score": {"mean": 80.0}, "minus_served": {"mean": 0.0, "sd": 0.0, "seeds_better": 0, "per_seed": [0.0] * 5}}
    cand = {"score": {"mean": 80.0}, "minus_served": {"mean": sum(diffs) / 5, "sd": 0.1, "seeds_better": sum(d > 0 for d in diffs),
                                                      "per_seed": diffs}}
    return {"first_seed": first_seed, "summary": {"served": ref, "served + x CNN (w chosen inside) + gate": cand}}


def test_a_candidate_that_passes_on_both_fold_seed_sets_is_named_not_denied(tmp_path):
    ideas, _ = _committed()
    good = [0.2, 0.3, 0.1, 0.4, -0.1]
    passes = [("cnn_served", "0..4", _doc(0, good), "2026-12-06"), ("cnn_served_seeds5to9", "5..9", _doc(5, good), "2026-12-06")]
    one_set = [passes[0], ("cnn_served_seeds5to9", "5..9", _doc(5, [0.2, -0.3, -0.1, 0.4, -0.1]), "2026-12-06")]
    assert [r["better"] for r in served_tests(passes)] == [4, 4]
    said = cnn_members(tmp_path, ideas, passes)[1].text
    assert "on both sets: served + x CNN (w chosen inside) + gate." in said and "has no CNN" not in said
    said = cnn_members(tmp_path, ideas, one_set)[1].text
    assert "1 of 2 rows clear that on their own set" in said and "the served verdict has no CNN in it" in said


def test_missing_results_are_said_with_the_command(tmp_path):
    (only,) = cnn_members(tmp_path, [("cnn_ideas", None, "")], [])
    assert only.missing == ["no CNN recipe figures: run bench/cnn_ideas.py"]
    ideas, _ = _committed()
    assert cnn_members(tmp_path, ideas, [])[1].missing[0].endswith("run bench/cnn_served.py")
