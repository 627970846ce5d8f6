"""The stream commands as a user runs them: `holmes broker`, `holmes replay`, `holmes consume`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.testing import read_scores

ROOT = Path(__file__).resolve().parents[2]


def _holmes(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    return subprocess.run([sys.executable, "-m", "holmes.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, **kw)


class TestStreamCommands:
    def test_broker_runs_in_the_foreground_and_stops_on_ctrl_c(self):
        p = subprocess.Popen([sys.executable, "-m", "holmes.cli", "broker"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            assert line.startswith("bootstrap servers: 127.0.0.1:"), line
            from streams.broker import KafkaSettings, wait_ready

            wait_ready(KafkaSettings(line.split(": ")[1].strip()), timeout_s=10)
        finally:
            p.send_signal(signal.SIGINT)
            assert p.wait(20) == 0

    def test_replay_then_consume_on_a_given_cluster(self, kafka_broker, stream_records, member_path):
        bs = kafka_broker.bootstrap_servers
        names = [r.name for r in stream_records[:2]]
        r = _holmes("replay", "--bootstrap-servers", bs, "--topic-prefix", "cli", "--records", *names, "--speed", "max",
                    "--start-s", "280", "--beds", "4")
        assert r.returncode == 0, r.stderr[-2000:]
        stats = json.loads(r.stdout[r.stdout.index("{"):])
        assert stats["patients"] == 4 and stats["chunks"] == 4 * 20 and stats["alarms"] == 4
        p = subprocess.Popen([sys.executable, "-m", "holmes.cli", "consume", "--bootstrap-servers", bs, "--topic-prefix", "cli",
                              "--scorer", "member", "--member-path", str(member_path)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(read_scores(kafka_broker.settings, "cli.icu.risk", idle_s=0.0, timeout_s=2)) < 4 * 5:
                time.sleep(0.5)
        finally:
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err[-2000:]
        metrics = json.loads(out[out.index("{"):])
        assert metrics["counters"]["windows_scored"] == 4 * 5 and metrics["counters"]["verdicts"] == 4
        ids = {s.patient_id for s in read_scores(kafka_broker.settings, "cli.icu.risk")}
        assert len(ids) == 4 and all(i.startswith("bed0000") or i.startswith("bed000") for i in ids)

    def test_consume_without_a_cluster_runs_the_embedded_pipeline(self, stream_records, member_path, tmp_path):
        out = tmp_path / "metrics.json"
        rec = next(r for r in stream_records if r.n_samples > 300 * 250)  # 60 s replayed into a 40 s ring at max speed
        r = _holmes("consume", "--scorer", "member", "--member-path", str(member_path), "--records", rec.name,
                    "--speed", "max", "--start-s", "270", "--metrics-json", str(out))
        assert r.returncode == 0, r.stderr[-2000:]
        m = json.loads(out.read_text())
        assert m["counters"]["windows_scored"] == rec.n_samples // 250 - 270 - 16 + 1
        assert m["counters"]["verdicts"] == 1 and m["counters"].get("lost_windows", 0) == 0

    def test_bad_arguments_are_rejected_with_the_value(self, capsys):
        import pytest

        from holmes.cli import main

        with pytest.raises(SystemExit) as e:
            main(["replay", "--speed", "0", "--bootstrap-servers", "127.0.0.1:1"])
        assert e.value.code == 2 and "--speed" in capsys.readouterr().err
        assert main(["consume", "--scorer", "nope", "--bootstrap-servers", "127.0.0.1:1"]) == 2
        err = capsys.readouterr().err
        assert "scorer" in err and "member" in err
        assert main(["consume", "--scorer", "serve", "--score-workers", "2", "--bootstrap-servers", "127.0.0.1:1"]) == 2
        err = capsys.readouterr().err
        assert "--score-workers" in err and "serve" in err
        with pytest.raises(SystemExit) as e:
            main(["consume", "--score-workers", "0", "--bootstrap-servers", "127.0.0.1:1"])
        assert e.value.code == 2 and "--score-workers" in capsys.readouterr().err
        assert main(["replay", "--bootstrap-servers", "localhost", "--records", "a103l"]) == 2
        err = capsys.readouterr().err
        assert "bootstrap_servers" in err and "localhost" in err
        assert main(["replay", "--bootstrap-servers", "127.0.0.1:1", "--records", "no_such_record"]) == 2
        err = capsys.readouterr().err
        assert "--records" in err and "no_such_record" in err
        assert main(["consume", "--risk-clear-below", "0.8", "--bootstrap-servers", "127.0.0.1:1"]) == 2
        assert "hysteresis.clear_below must be <= hysteresis.raise_at (0.7), got 0.8" in capsys.readouterr().err


class TestOfflineReplay:
    def test_replay_offline_writes_every_window_with_one_verdict(self, tmp_path, capsys):
        import csv

        from holmes.cli import main

        out = tmp_path / "scores.csv"
        assert main(["replay", "--offline", "--records", "a105l", "v132s", "--start-s", "270", "--end-s", "310", "--workers", "2",
                     "--out", str(out)]) == 0
        assert "x real time" in capsys.readouterr().out
        rows = list(csv.DictReader(out.open()))
        assert len(rows) == (310 - 286 + 1) + (300 - 286 + 1)  # ends 286..310 (a105l, 330 s long) and 286..300 (v132s, 300 s)
        alarms = [r for r in rows if r["is_alarm"] == "True"]
        assert [(r["record"], float(r["window_end_s"])) for r in alarms] == [("a105l", 300.0), ("v132s", 300.0)]
        assert all(r["verdict"] in ("True", "False") for r in alarms)
        assert all(r["verdict"] == "" for r in rows if r["is_alarm"] == "False")
        assert all(0.0 <= float(r["probability"]) <= 1.0 and r["risk_alarm"] in ("True", "False") for r in rows)
        # the stream's alarm context: the default type until the monitor's alarm arrives, the alarm's type from then on
        a105 = [r for r in rows if r["record"] == "a105l"]
        assert {r["alarm_type"] for r in a105 if float(r["window_end_s"]) < 300} == {"Ventricular_Tachycardia"}
        assert {r["alarm_type"] for r in a105 if float(r["window_end_s"]) >= 300} == {"Asystole"}

    def test_replay_offline_refuses_the_service_scorer(self, capsys):
        from holmes.cli import main

        assert main(["replay", "--offline", "--scorer", "serve", "--records", "a103l"]) == 2
        assert "--scorer must run in process for --offline" in capsys.readouterr().err
