"""``holmes demo`` (the README's main command), short: real records through the embedded broker, scored, with the
cascade and its verdict lane; every alarm answered by the ensemble, the table says by what and in how many ms."""

from __future__ import annotations

import json
from pathlib import Path


from holmes.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_demo_with_the_cascade_answers_every_alarm_with_the_ensemble(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--scorer", "cascade", "--patients", "4", "--start-s", "280", "--end-s", "302", "--speed", "8",
                 "--out", str(out)]) == 0
    from unfold.persist import load

    ensemble = load().ensemble.name  # the committed cascade's costly rung: its verdicts in process
    printed = capsys.readouterr().out
    assert "answered by" in printed and ensemble in printed and "/4 correct" in printed
    scores = json.loads((out / "scores.json").read_text())
    verdicts = [s for s in scores if s["verdict"] is not None]
    assert len(verdicts) == 4 and {tuple(s["models"]) for s in verdicts} == {(ensemble,)}
    routine = [s for s in scores if s["verdict"] is None]
    assert routine and all(any("stage1/quick-trees" in m for m in s["models"]) for s in routine)  # the cheap cascade
    assert all(0.0 <= s["probability"] <= 1.0 and isinstance(s["risk_alarm"], bool) and not s["degraded"] for s in scores)
    assert all(s["e2e_ms"] < 5000 for s in scores)
    assert (out / "risk.png").stat().st_size > 10_000


def test_demo_runs_the_whole_service_path(tmp_path, capsys):
    """The default demo: Ray Serve application of the committed plan, features-typed-inc on per-patient incremental
    features in process for routine windows, verdict lane with the floor row."""
    from holmes.compose.plan import Plan

    out = tmp_path / "demo"
    assert main(["demo", "--patients", "4", "--start-s", "281", "--end-s", "302", "--speed", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    floor_plan = Plan.load(REPO / "deploy" / "plan.json")
    floor = floor_plan.floor()
    assert "answered by" in printed and "verdict-bag (features-typed + features-typed-inc pipelines" in printed and "/4 correct" in printed
    scores = json.loads((out / "scores.json").read_text())
    verdicts = [s for s in scores if s["verdict"] is not None]
    # every alarm answered by the verdict lane with the bag (models.verdict_bag: the mean of 5 whole pipelines, each the
    # served procedure fitted on 80 % of the records), in time; the service's floor row answered too (the fallback)
    assert len(verdicts) == 4 and all(s["models"][:3] == ["verdict-bag", "features-typed", "features-typed-inc"] for s in verdicts)
    assert floor.members == ("features-typed",)
    assert all(not s["degraded"] and s["e2e_ms"] < 1000 for s in verdicts)
    routine = [s for s in scores if s["verdict"] is None]
    assert routine and all(s["models"] == ["features-typed-inc"] for s in routine)  # in process, no service call
    # what the routine lane published is the incremental model and its calibration map run offline on each patient's
    # record streamed from where the replay began: the served state carried from hop to hop changed nothing
    from models.data import load_dataset, resolve_data_dir
    from models.incremental_model import stream_probabilities

    names = sorted({s["patient"] for s in routine})
    recs = {r.name: r for r in load_dataset(resolve_data_dir(None), names)[0]}
    wanted = [{s["window_end_s"]: s["alarm_type"] for s in routine if s["patient"] == n} for n in names]
    assert sum(map(len, wanted)) == len(routine) == 3 * 4  # windows end 297-299; the one ending at the alarm (300) is the verdict
    offline = stream_probabilities([recs[n] for n in names], 281.0, wanted)
    got = {(s["patient"], s["window_end_s"]): s["probability"] for s in routine}
    assert all(abs(offline[i][e] - got[(n, e)]) < 1e-9 for i, n in enumerate(names) for e in wanted[i])
    # each verdict: the bag offline on the same stream (the alarm window advanced the bed's state like any window): per
    # member, its row model on the alarm window's batch features and its incremental model over the alarm window and
    # the windows ending 1..K s before it that the replay (from 281 s) had, its map, gate and VT re-scorer; the mean of
    # the members, "true" at >= 1/6
    from models.verdict_bag import load as load_bag, served_probabilities as bag_probabilities

    vrec = [recs.get(s["patient"]) or load_dataset(resolve_data_dir(None), [s["patient"]])[0][0] for s in verdicts]
    assert all(s["window_end_s"] == 300.0 for s in verdicts)
    want, _ = bag_probabilities(vrec, load_bag(), 281.0, [s["window_end_s"] for s in verdicts])
    for s, w in zip(verdicts, want):
        assert abs(s["probability"] - w) < 1e-9
        assert s["verdict"] == (s["probability"] >= 1.0 / 6.0)
    assert all(0.0 <= s["probability"] <= 1.0 for s in scores)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counters"]["verdicts"] == 4 and metrics["counters"].get("verdicts_late", 0) == 0


def test_the_demo_table_says_what_answered_a_verdict():
    from holmes.commands.demo import _answered_by

    base = ["plan:budget_250ms", "features-typed", "features-typed-inc", "verdict-shift"]
    assert _answered_by(base) == "budget_250ms (1 models) + features-typed-inc over earlier windows (verdict-shift)"
    assert _answered_by(base + ["definition-gate", "vt-spectral"]) == (
        "budget_250ms (1 models) + features-typed-inc over earlier windows (verdict-shift), capped by the definition-gate, "
        "re-scored by vt-spectral")
    assert _answered_by(["features-typed-inc"]) == "features-typed-inc"
    assert _answered_by(["verdict-bag", "features-typed", "features-typed-inc", "vt-spectral"]) == (
        "verdict-bag (features-typed + features-typed-inc pipelines), re-scored by vt-spectral")
