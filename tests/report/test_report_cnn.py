"""The report's CNN sections: built from the committed bench results, and their verdict on serving computed, not said."""

from __future__ import annotations

import json

import pytest

from holmes.report import RESULTS, _json
from holmes.report_cnn import IDEAS, TESTS, cnn_members, recipes, served_tests, verdict_on_serving


def _committed():
    return [(n, *_json(n)) for n in IDEAS], [(n, *_json(n)) for n in TESTS]


def _read(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def test_recipe_table_merges_every_runs_figures_once_per_variant(tmp_path):
    ideas, tests = _committed()
    auroc, vote, typed = {}, {}, {}
    for name in IDEAS:
        for v, row in _read(name)["variants"].items():
            auroc.setdefault(v, row["auroc"])
            vote.setdefault(v, row["stacked_with_features_vote"]["score"])
            if "stacked_with_features_typed" in row:
                typed.setdefault(v, row["stacked_with_features_typed"]["score"])
    assert typed, "no committed run stacks a CNN with features-typed"
    recipes_section, served = cnn_members(tmp_path, ideas, tests)
    rows = {r[0]: r for r in recipes_section.table[1:]}
    assert set(rows) == set(auroc) | {"features-vote", "features-typed"}
    for v in auroc:
        assert rows[v][1] == f"{auroc[v]:.3f}"
        assert rows[v][2].startswith(f"{vote[v]:.2f} +- ")
        assert rows[v][3].startswith(f"{typed[v]:.2f} +- ") if v in typed else rows[v][3] == "-"
    best = max(auroc, key=auroc.get)
    assert f"The strongest, {best}, reaches AUROC {auroc[best]:.3f}" in recipes_section.text
    assert (tmp_path / "cnn_tried.png").stat().st_size > 10_000


def test_served_section_counts_and_verdict_follow_the_committed_results(tmp_path):
    ideas, tests = _committed()
    rows = []
    for name in TESTS:
        doc = _read(name)
        for rule in list(doc["summary"])[1:]:
            d = doc["summary"][rule]["minus_served"]
            rows.append(d["mean"] > 0 and d["seeds_better"] >= 4)
    said = cnn_members(tmp_path, ideas, tests)[1]
    assert len(said.table) == 1 + len(rows)
    assert f"{sum(rows)} of {len(rows)} rows pass on their own set" in said.text
    both, _, _ = verdict_on_serving(served_tests(tests))
    assert ("the served verdict has no CNN in it" in said.text) == (not both)


def _doc(first_seed: int, diffs: list[float], bench: str = "bench/cnn_served.py", encoder: str | None = None) -> dict:
    ref = {"score": {"mean": 80.0}, "auroc": {"mean": 0.96}, "ece": {"mean": 0.03},
           "minus_served": {"mean": 0.0, "sd": 0.0, "seeds_better": 0, "per_seed": [0.0] * len(diffs)}}
    cand = {"score": {"mean": 80.0}, "auroc": {"mean": 0.96}, "ece": {"mean": 0.03},
            "minus_served": {"mean": sum(diffs) / len(diffs), "sd": 0.1, "seeds_better": sum(d > 0 for d in diffs), "per_seed": diffs}}
    rule = "served + residual" if bench == "bench/cnn_residual.py" else "served + x CNN (w chosen inside) + gate"
    doc = {"command": bench, "first_seed": first_seed, "fold_seeds": len(diffs), "summary": {"served": ref, rule: cand}}
    if bench == "bench/cnn_residual.py":
        doc |= {"member": {"inputs": "ecg", "width": 8, "depth": 2}, "encoder": encoder}
    return doc


GOOD, MIXED = [0.2, 0.3, 0.1, 0.4, -0.1], [0.2, -0.3, -0.1, 0.4, -0.1]


@pytest.mark.parametrize("docs, named", [
    ([_doc(0, GOOD), _doc(5, GOOD)], True),  # passes on two sets
    ([_doc(0, GOOD)], False),  # one set only: not yet decided
    ([_doc(0, GOOD), _doc(0, GOOD)], False),  # the same set twice is not two sets
    ([_doc(0, GOOD), _doc(5, MIXED)], False),  # fails the second set
    ([_doc(0, [0.1, 0.1, 0.1, 0.1, -5.0]), _doc(5, GOOD)], False),  # 4/5 better but a negative mean
    ([_doc(0, GOOD, "bench/cnn_residual.py", None), _doc(5, GOOD, "bench/cnn_residual.py", "distill")], False),  # two encoders
    ([_doc(0, GOOD, "bench/cnn_residual.py", "distill"), _doc(5, GOOD, "bench/cnn_residual.py", "distill")], True),
])
def test_a_candidate_is_named_only_when_it_passes_on_two_fold_seed_sets(tmp_path, docs, named):
    ideas, _ = _committed()
    tests = [(f"run{i}", d, "2026-12-06") for i, d in enumerate(docs)]
    both, _, _ = verdict_on_serving(served_tests(tests))
    said = cnn_members(tmp_path, ideas, tests)[1].text
    assert bool(both) == named
    assert ("Passing on two sets: " in said) == named
    if not named:  # either no CNN, or a candidate measured on one set that passed it, said to be undecided
        assert ("the served verdict has no CNN in it" in said) != ("not yet decided" in said)


def test_residual_rule_also_wants_auroc_kept_and_ece_low():
    doc = _doc(0, GOOD, "bench/cnn_residual.py")
    assert served_tests([("r", doc, "")])[0]["passes"]
    doc["summary"]["served + residual"]["ece"]["mean"] = 0.06
    assert not served_tests([("r", doc, "")])[0]["passes"]


def test_missing_results_and_mixed_members_are_said(tmp_path):
    (only,) = cnn_members(tmp_path, [("cnn_ideas", None, "")], [])
    assert only.missing == ["no CNN recipe figures: run bench/cnn_ideas.py"]
    ideas, _ = _committed()
    assert cnn_members(tmp_path, ideas, [])[1].missing[0].endswith("run bench/cnn_served.py")
    other = ("cnn_ideas_all_w16_d2", *_json("cnn_ideas_all_w16_d2"))
    with pytest.raises(ValueError, match="two members"):
        recipes([*ideas, other])
