"""``holmes serve`` as an operator runs it: a subprocess with the embedded broker, a small plan (two real members), two
consumer processes in one group (``--consumers 2``),
features-typed-inc on incremental per-patient features for routine windows and the verdict lane. It prints the bootstrap address and a line with ``ready``,
scores what ``holmes replay`` sends it, and stops cleanly on SIGTERM (exit 0, metrics written)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _small_plan(tmp_path) -> Path:
    d = json.loads((ROOT / "deploy" / "plan.json").read_text())
    d["ensembles"] = [e for e in d["ensembles"] if e["name"] in ("budget_50ms", "budget_100ms")]  # one CNN, one feature model
    used = {m for e in d["ensembles"] for m in e["members"]}
    d["member_latency_ms"] = {k: v for k, v in d["member_latency_ms"].items() if k in used}
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(d))
    return p


def test_holmes_serve_ready_scores_and_stops_on_sigterm(tmp_path):
    plan = _small_plan(tmp_path)
    metrics = tmp_path / "metrics.json"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # its own service file
    proc = subprocess.Popen([sys.executable, "-m", "holmes.cli", "serve", "--plan", str(plan), "--port", "0", "--consumers", "2",
                             "--metrics-json", str(metrics)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("[serve] ready"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(420), "\n".join(lines[-40:])
        text = "\n".join(lines)
        bootstrap = re.search(r"bootstrap servers: (\S+)", text).group(1)
        assert "verdict floor: budget_100ms" in text and "routine windows: features-typed-inc" in text
        assert "with 2 consumers" in text and "[consumer 1] [serve] ready" in text
        service_file = tmp_path / "cache" / "holmes-icu" / "serve.json"
        assert json.loads(service_file.read_text())["pid"] == proc.pid
        rep = subprocess.run([sys.executable, "-m", "holmes.cli", "replay", "--bootstrap-servers", bootstrap, "--beds", "16", "--limit", "8",
                              "--speed", "4", "--start-s", "282", "--end-s", "300"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=180)
        assert rep.returncode == 0, rep.stderr[-2000:]
        time.sleep(6)  # the consumer drains
    finally:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
    assert rc == 0 and time.monotonic() - t0 < 90, "\n".join(lines[-40:])
    m = json.loads(metrics.read_text())
    # the two consumers split the 16 beds by partition and together scored each window once: windows end 298, 299, 300
    (other,) = m["extra_consumers"]
    assert other["rc"] == 0 and m["counters"]["windows_scored"] > 0 and other["counters"]["windows_scored"] > 0
    assert m["counters"]["windows_scored"] + other["counters"]["windows_scored"] == 16 * 3
    assert m["counters"]["verdicts"] + other["counters"]["verdicts"] == 16
    assert m["counters"].get("verdicts_degraded", 0) + other["counters"].get("verdicts_degraded", 0) == 0
    assert m["service"]["floor"] == "budget_100ms"
    assert any("stopped Serve, Ray and the embedded broker" in ln for ln in lines)
    assert not (tmp_path / "cache" / "holmes-icu" / "serve.json").exists()  # no stale service file left behind
