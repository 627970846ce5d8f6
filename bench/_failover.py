"""A consumer's failover in ``bench/serve_beds.py --kill-consumer-at S``: one extra consumer of ``holmes serve`` SIGKILLed
mid-replay, and what the published windows and the service's log say of the recovery."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from _servebench import over_time


def kill_consumer(svc, after_s: float, killed: dict) -> None:
    """SIGKILL the first ``holmes serve --consumer-only`` child of ``svc`` ``after_s`` after now; ``killed`` gets its pid
    and the time."""
    time.sleep(after_s)
    for line in open(f"/proc/{svc.proc.pid}/task/{svc.proc.pid}/children").read().split():
        try:
            cmd = open(f"/proc/{line}/cmdline").read().split("\0")
        except OSError:
            continue
        if "--consumer-only" in cmd:
            os.kill(int(line), signal.SIGKILL)
            killed.update(pid=int(line), unix_s=time.time())
            print(f"[bench] SIGKILLed extra consumer pid {line}", flush=True)
            return
    killed["error"] = "no --consumer-only child of holmes serve (needs --serve-args '--consumers 2')"


GROUP_EVENTS = ("ended (exit code", "[serve] ready", "[serve] consumer of group", "assign", "revoked partitions", "commit failed",
                "rebalanc", "Heartbeat")


def failover(killed: dict, r_ms, r_pub, v_ms, v_pub, lines: list[tuple[float, str]], metrics: dict, bucket_s: float = 5.0) -> dict:
    """Routine latency per ``bucket_s`` from 10 s before the kill, how long after it p99 stays under 1 s again, the
    windows and verdicts published over 1 s after it, and what ``holmes serve`` said of the restart and of the
    consumer group from the kill on (seconds after the kill)."""
    if "unix_s" not in killed:
        return {"error": killed.get("error", "no consumer was killed")}
    t = killed["unix_s"]
    r_ms, r_pub = np.asarray(r_ms), np.asarray(r_pub)
    near = (r_pub >= t - 10.0) & (r_pub < t + 120.0)
    around = [{**b, "from_s": round(b["from_s"] - 10.0, 1)} for b in over_time(r_ms[near], r_pub[near], t - 10.0, bucket_s)]
    bad = [b["from_s"] for b in around if b["from_s"] >= 0 and b["p99"] >= 1000.0]
    after = r_pub >= t
    v_after = np.asarray(v_ms)[np.asarray(v_pub) >= t] if len(v_pub) else np.array([])
    return {"killed_pid": killed["pid"], "killed_unix_s": round(t, 3),
            "recovered_after_s": (bad[-1] + bucket_s) if bad else 0.0,
            "routine_over_1s_after_kill": int((after & (r_ms >= 1000.0)).sum()),
            "routine_max_ms_after_kill": round(float(r_ms[after].max()), 1) if after.any() else None,
            "verdicts_after_kill": int(len(v_after)), "verdicts_over_1s_after_kill": int((v_after >= 1000.0).sum()),
            "serve_said": [f"{u - t:+.1f} s {ln}" for u, ln in lines if u >= t - 1 and any(e in ln for e in GROUP_EVENTS)][:200],
            "restarts": [c.get("restarts") for c in metrics.get("extra_consumers", [])],
            "routine_e2e_around_kill": around}
