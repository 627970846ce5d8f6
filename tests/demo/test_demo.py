"""``holmes demo`` (the README's main command), short: real records through the embedded broker, scored, with the
cascade and its verdict lane; every alarm answered by the ensemble, the table says by what and in how many ms."""

from __future__ import annotations

import json

from holmes.cli import main


def test_demo_with_the_cascade_answers_every_alarm_with_the_ensemble(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--scorer", "cascade", "--patients", "4", "--start-s", "280", "--end-s", "302", "--speed", "8",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "answered by" in printed and "cnn+features-ensemble" in printed and "/4 correct" in printed
    scores = json.loads((out / "scores.json").read_text())
    verdicts = [s for s in scores if s["verdict"] is not None]
    assert len(verdicts) == 4 and {tuple(s["models"]) for s in verdicts} == {("cnn+features-ensemble",)}
    routine = [s for s in scores if s["verdict"] is None]
    assert routine and all(any("stage1/quick-trees" in m for m in s["models"]) for s in routine)  # the cheap cascade
    assert all(0.0 <= s["probability"] <= 1.0 and isinstance(s["risk_alarm"], bool) and not s["degraded"] for s in scores)
    assert all(s["e2e_ms"] < 5000 for s in scores)
    assert (out / "risk.png").stat().st_size > 10_000
