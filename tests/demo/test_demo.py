"""``holmes demo`` (the README's main command), short: real records through the embedded broker, scored, with the
cascade and its verdict lane; every alarm answered by the ensemble, the table says by what and in how many ms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
    assert "answered by" in printed and floor.name in printed and "/4 correct" in printed
    scores = json.loads((out / "scores.json").read_text())
    verdicts = [s for s in scores if s["verdict"] is not None]
    # every alarm answered by the service's verdict lane with the floor row (the most accurate on nested CV), blended
    # with features-typed-inc on the patient's streamed state (streams.verdict_blend.VerdictBlend), in time
    # and averaged over the windows ending 1..K s before the alarm (models.verdict_shift) that the replay had
    assert len(verdicts) == 4 and all(s["models"][0] == f"plan:{floor.name}" and s["models"][-2:] == ["features-typed-inc", "verdict-shift"]
                                      and set(s["models"][1:-2]) == set(floor.members) for s in verdicts)
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
    # each verdict: the shift's map of the mean of the floor row offline and the incremental model on the same stream
    # (the alarm window advanced the bed's state like any window), each averaged over the alarm window and the windows
    # ending 1..K s (the row: 1..k_row s) before it that the replay (from 281 s) had, "true" at >= 1/6
    from holmes.compose.plan import row_probabilities
    from models.data import window
    from models.verdict_shift import load as load_shift

    shift = load_shift()
    vrec = [recs.get(s["patient"]) or load_dataset(resolve_data_dir(None), [s["patient"]])[0][0] for s in verdicts]
    ends = [[s["window_end_s"] - o for o in range(shift.k + 1) if s["window_end_s"] - o - 16.0 >= 281.0] for s in verdicts]
    assert all(e[0] == 300.0 and len(e) == min(shift.k, 3) + 1 for e in ends)
    row_ends = [es[: shift.k_row + 1] for es in ends]
    cut = [(r, s, e) for r, s, es in zip(vrec, verdicts, row_ends) for e in es]
    w = np.stack([window(r, e, 16.0) for r, _, e in cut]).astype(np.float32)
    m = np.stack([r.mask for r, _, _ in cut]) & np.isfinite(w).any(axis=2)
    row = iter(row_probabilities(floor_plan, floor.name, REPO / "artifacts" / "registry", w, m, [s["alarm_type"] for _, s, _ in cut]))
    inc = stream_probabilities(vrec, 281.0, [{e: s["alarm_type"] for e in es} for s, es in zip(verdicts, ends)])
    for s, es, res, b in zip(verdicts, ends, row_ends, inc):
        want = shift.blend([next(row) for _ in res], [b[e] for e in es])
        assert abs(s["probability"] - want) < 1e-9
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
