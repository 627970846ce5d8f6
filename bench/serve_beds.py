"""The system as users run it: ``holmes serve`` (Ray Serve ensembles, cascade for routine windows, verdict lane,
embedded broker) fed by ``holmes replay --beds N --speed 1 [--stagger-s S]`` from another process; the verdicts
published on ``icu.risk`` are read back and compared with the offline probability of the same ensemble on the
same window.

    .venv/bin/python bench/serve_beds.py --beds 300 --stagger-s 60            # a ward: alarms spread over 60 s
    .venv/bin/python bench/serve_beds.py --beds 300 --stagger-s 0 --tag burst  # every alarm in the same second

Per run: alarms answered, verdicts degraded (by reason), verdicts published after their deadline without the flag
(must be 0), e2e p50/p95/p99 for verdicts (from the alarm's sample time) and routine windows (from the window's
last sample), windows lost, the cascade's escalations, the largest |published - offline| verdict probability,
CPU and load, and ``bench/features_cost.py``'s median for this machine. Writes bench/results/serve_beds_<tag>.json
and .png, and prints a table.

``--kill-consumer-at S`` SIGKILLs one of ``holmes serve``'s extra consumer processes S s into the replay: the group
hands its partitions to the other consumer (after the session timeout), which re-reads them from the last commit and
restarts those beds' incremental state, and ``holmes serve`` restarts the killed one, which takes its share back. The
JSON's ``failover`` gives routine latency per 5 s around the kill, when p99 is under 1 s again, and what was late.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _failover import failover, kill_consumer  # noqa: E402
from _offline_check import offline_check, offline_routine_check  # noqa: E402
from _servebench import cpu_by_process, cpu_delta, features_cost, machine, over_time, rss_by_process, write_json  # noqa: E402
from models.incremental_model import NAME as INC_NAME  # noqa: E402

HOLMES = [sys.executable, "-m", "holmes.cli"]


class Service:
    """``holmes serve`` in a subprocess; its output is kept, the bootstrap address and the ready line awaited."""

    def __init__(self, metrics_path: Path, extra: list[str]):
        self.lines: list[str] = []
        self.line_unix_s: list[float] = []  # when each line was read
        self.proc = subprocess.Popen(HOLMES + ["serve", "--port", "0", "--metrics-json", str(metrics_path)] + extra, cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.ready = threading.Event()
        self.bootstrap: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.line_unix_s.append(time.time())
            self.lines.append(line.rstrip())
            m = re.search(r"bootstrap servers: (\S+)", line)
            if m:
                self.bootstrap = m.group(1)
            if line.startswith("[serve] ready"):
                self.ready.set()

    def wait_ready(self, timeout_s: float) -> None:
        if not self.ready.wait(timeout_s):
            self.stop()
            raise RuntimeError("holmes serve did not get ready:\n" + "\n".join(self.lines[-30:]))

    def stop(self, timeout_s: float = 120) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def verdict_parts(verdicts) -> dict:
    """Where a verdict's time went, from its RiskScore's ``latency_ms``: sample to window cut in the consumer
    (``until_cut``: broker, poll, the consumer's other work), cut to the verdict call (``queued``: routine work of the
    patient first, the batch), the verdict call (``score``)."""
    parts = {"until_cut": [], "queued": [], "score": []}
    for s in verdicts:
        lat = s.latency_ms or {}
        if not {"wait_ms", "score_ms", "to_send_ms"} <= set(lat):
            continue
        parts["until_cut"].append(lat["wait_ms"])
        parts["score"].append(lat["score_ms"])
        parts["queued"].append(lat["to_send_ms"] - lat["wait_ms"] - lat["score_ms"])
    return {k: pct(v) for k, v in parts.items()}


def pct(v) -> dict:
    v = np.asarray(v, dtype=float)
    if not len(v):
        return {"n": 0}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {"n": int(len(v)), "p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
            "max": round(float(v.max()), 1), "within_1s": round(float((v <= 1000).mean()), 4)}


def steady_cpu(samples: list, first_unix_s: float | None, args, published_unix_s: list) -> dict:
    """CPU per process group while every bed streams: from the last bed's first window (``stagger_s`` + 16 s after
    the first message) to the first bed's last chunk (the record span after the first message); so the replay's
    record loading, Ray's start and the drain are left out. Per window: over the windows published in that span
    (fewer than the beds make when the system falls behind; ``windows_made`` says how many were made)."""
    if not samples or first_unix_s is None:
        return {"error": "no CPU samples or no first message"}
    a, b = first_unix_s + args.stagger_s + 16.0, first_unix_s + (args.end_s - args.start_s)
    inside = [(t, c) for t, c in samples if a <= t <= b]
    if len(inside) < 2:
        return {"error": f"the streams never all ran together (span {b - a:.0f} s): lengthen --end-s - --start-s"}
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    cpu = cpu_delta(c0, c1)
    made = args.beds * (t1 - t0)
    pub = np.asarray(published_unix_s, dtype=float)
    windows = max(1, int(((pub >= t0) & (pub <= t1)).sum()))
    total = sum(cpu.values())
    gen = cpu.get("holmes replay (load generator)", 0.0)
    return {"interval_s": round(t1 - t0, 1), "windows": windows, "windows_made": round(made), "cpu_s_by_process": cpu,
            "cores_busy": round(total / (t1 - t0), 2),
            "cpu_ms_per_window": {"all": round(total / windows * 1e3, 3), "without_load_generator": round((total - gen) / windows * 1e3, 3)}}


def profile(metrics: dict, n_windows: int) -> dict:
    """Per window: the consumer loop's stages (main-thread CPU and wall ms) and the cascade's components (ms per routine
    window; ``ensemble`` is the wall time of the escalation calls to the service, whose CPU is the Ray processes')."""
    out = {}
    for k, v in (metrics.get("stages") or {}).items():
        out[f"consumer:{k}"] = {"cpu_ms": round(v["cpu_s"] / max(1, n_windows) * 1e3, 4), "wall_ms": round(v["wall_s"] / max(1, n_windows) * 1e3, 4)}
    stats = (metrics.get("service") or {}).get("stats") or {}
    for k, v in (stats.get("component_ms") or {}).items():
        out[f"cascade:{k}"] = {"ms": round(v / max(1, stats.get("windows", 0)), 4)}
    if stats.get("windows"):
        out["cascade:escalated_frac"] = round(stats["escalated"] / stats["windows"], 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beds", type=int, default=300)
    ap.add_argument("--stagger-s", type=float, default=60.0)
    ap.add_argument("--start-s", type=float, default=280.0)
    ap.add_argument("--end-s", type=float, default=300.0)
    ap.add_argument("--tag", help="result name (default: <beds>beds_stagger<S>)")
    ap.add_argument("--serve-args", default="", help="extra `holmes serve` options, e.g. '--routine-scorer serve'")
    ap.add_argument("--alarm-every", type=int, default=1, help="only every K-th bed raises its alarm (holmes replay --alarm-every)")
    ap.add_argument("--replay-args", default="", help="extra `holmes replay` options, e.g. '--linger-ms 20'")
    ap.add_argument("--no-offline-check", action="store_true")
    ap.add_argument("--kill-consumer-at", type=float, default=None,
                    help="SIGKILL one extra consumer process (holmes serve --consumers >= 2) this many seconds after the replay "
                         "starts: the failover (its partitions re-read by the others, then its restart) measured")
    args = ap.parse_args()
    tag = args.tag or f"{args.beds}beds_stagger{args.stagger_s:g}"

    from streams.broker import KafkaSettings, Topics
    from streams.testing import dedup_last, read_scores

    print("[bench] bench/features_cost.py on this machine ...", flush=True)
    fc = features_cost()
    tmp = Path(tempfile.mkdtemp())
    t0 = time.time()
    svc = Service(tmp / "metrics.json", args.serve_args.split())
    svc.wait_ready(600)
    startup_s = time.time() - t0
    print(f"[bench] holmes serve ready in {startup_s:.0f} s at {svc.bootstrap}; replaying {args.beds} beds", flush=True)
    own = {svc.proc.pid: "holmes serve (consumer + Ray driver)"}
    rep = subprocess.Popen(HOLMES + ["replay", "--bootstrap-servers", svc.bootstrap, "--beds", str(args.beds), "--speed", "1",
                                     "--stagger-s", str(args.stagger_s), "--start-s", str(args.start_s), "--end-s", str(args.end_s),
                                     "--alarm-every", str(args.alarm_every), *args.replay_args.split()],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    own[rep.pid] = "holmes replay (load generator)"
    killed: dict = {}
    if args.kill_consumer_at is not None:
        threading.Thread(target=kill_consumer, args=(svc, args.kill_consumer_at, killed), daemon=True).start()
    load, samples = [], []  # load average every 2 s; (time, CPU per process group) every second
    stop_load = threading.Event()
    threading.Thread(target=lambda: [load.append(os.getloadavg()[0]) for _ in iter(lambda: stop_load.wait(2.0), True)],
                     daemon=True).start()
    threading.Thread(target=lambda: [samples.append((time.time(), cpu_by_process(own))) for _ in iter(lambda: stop_load.wait(1.0), True)],
                     daemon=True).start()
    peak_rss: dict[str, float] = {}  # MiB, the largest seen per process group (every 5 s)

    def sample_rss():
        for g, v in rss_by_process(own).items():
            peak_rss[g] = max(peak_rss.get(g, 0.0), v)

    threading.Thread(target=lambda: [sample_rss() for _ in iter(lambda: stop_load.wait(5.0), True)], daemon=True).start()
    rep_out, rep_err = rep.communicate()
    rep = subprocess.CompletedProcess(rep.args, rep.returncode, rep_out, rep_err)
    replay_stats = json.loads(rep.stdout[rep.stdout.index("{"):]) if "{" in rep.stdout else {"error": rep.stderr[-2000:]}
    n_windows_bed = int(args.end_s - args.start_s - 16 + 1)
    expected = args.beds * n_windows_bed
    settings = KafkaSettings(svc.bootstrap)
    scores, t_drain = {}, time.time()
    while time.time() - t_drain < 60:  # the consumer drains what is left
        time.sleep(3)
        scores = dedup_last(read_scores(settings, Topics().risk, timeout_s=5.0))
        if len(scores) >= expected:
            break
    stop_load.set()
    rc = svc.stop()
    metrics = json.loads((tmp / "metrics.json").read_text()) if (tmp / "metrics.json").exists() else {}
    steady = steady_cpu(samples, metrics.get("first_message_unix_s"), args, [s.published_unix_s for s in scores.values()])
    scores = list(scores.values())
    verdicts = [s for s in scores if s.alarm_time_s is not None]
    routine = [s for s in scores if s.alarm_time_s is None]

    def alarm_unix(s):
        return s.sample_unix_s - max(s.window_end_s - s.alarm_time_s, 0.0)

    v_ms = [(s.published_unix_s - alarm_unix(s)) * 1e3 for s in verdicts]
    r_ms = [(s.published_unix_s - s.sample_unix_s) * 1e3 for s in routine]
    reasons: dict[str, int] = {}
    for s in verdicts:
        for r in s.degraded_reasons:
            reasons[r] = reasons.get(r, 0) + 1
    late_unflagged = sum(1 for s, ms in zip(verdicts, v_ms) if ms > 1000 and "verdict_late" not in s.degraded_reasons)
    answered_by: dict[str, int] = {}
    for s in verdicts:
        k = s.models[0] if s.models else "-"
        answered_by[k] = answered_by.get(k, 0) + 1
    out = {
        "machine": machine(), "features_cost": {"rows": fc.get("rows"), "beds_per_core_at_1hz": fc.get("beds_per_core_at_1hz"),
                                                "compiled_rows": fc.get("compiled_rows"), "compiled_speedup": fc.get("compiled_speedup")},
        "features_engine": os.environ.get("HOLMES_FEATURES_ENGINE") or "auto",
        "command": " ".join(sys.argv), "beds": args.beds, "stagger_s": args.stagger_s, "record_s": [args.start_s, args.end_s],
        "serve_args": args.serve_args, "startup_s": round(startup_s, 1), "serve_rc": rc,
        "replay": replay_stats, "expected_windows": expected, "windows_published": len(scores),
        "alarms": -(-args.beds // args.alarm_every), "alarm_every": args.alarm_every, "verdicts": len(verdicts), "verdicts_degraded": sum(1 for s in verdicts if s.degraded),
        "verdict_degraded_reasons": reasons, "verdicts_late_unflagged": late_unflagged, "answered_by": answered_by,
        "verdicts_blended": sum(1 for s in verdicts if INC_NAME in s.models),  # VerdictBlend: row + incremental
        "routine_degraded": sum(1 for s in routine if s.degraded),
        "verdict_e2e_ms": pct(v_ms), "routine_e2e_ms": pct(r_ms), "verdict_parts_ms": verdict_parts(verdicts),
        "routine_e2e_over_time": over_time(r_ms, [s.published_unix_s for s in routine], metrics.get("first_message_unix_s")),
        "load_avg_1m": {"mean": round(float(np.mean(load)), 2) if load else None, "max": round(float(np.max(load)), 2) if load else None},
        "consumer_metrics": metrics,
        "peak_rss_mib": {k: round(v) for k, v in sorted(peak_rss.items(), key=lambda kv: -kv[1]) if v >= 50},
        "steady_state": steady, "cpu_s_by_process": steady.get("cpu_s_by_process", {}),
        "cpu_ms_per_window": steady.get("cpu_ms_per_window", {}),
        "profile": profile(metrics, len(scores)),
    }
    if args.kill_consumer_at is not None:
        out["failover"] = failover(killed, r_ms, [s.published_unix_s for s in routine], v_ms, [s.published_unix_s for s in verdicts],
                                   list(zip(svc.line_unix_s, svc.lines)), metrics)
        print(f"[bench] failover: {json.dumps({k: v for k, v in out['failover'].items() if k != 'routine_e2e_around_kill'})}")
    if not args.no_offline_check and verdicts:
        print("[bench] offline probability of the same ensemble on the same windows ...", flush=True)
        given = shlex.split(args.serve_args)  # the plan `holmes serve` was given, else the committed one
        plan_path = given[given.index("--plan") + 1] if "--plan" in given[:-1] else str(ROOT / "deploy" / "plan.json")
        out["offline_check"] = offline_check([s for s in verdicts if s.models and (s.models[0].startswith("plan:") or s.models[0] == "verdict-bag")],
                                             plan_path, str(ROOT / "artifacts" / "registry"), args.start_s)
    if not args.no_offline_check and ("--routine-scorer" not in args.serve_args or "incremental" in args.serve_args):  # the default
        print("[bench] offline probability of the incremental model on the same beds' streams ...", flush=True)
        out["offline_routine_check"] = offline_routine_check(routine, args.start_s)
    path = write_json(f"serve_beds_{tag}.json", out)
    _plot(ROOT / "bench" / "results" / f"serve_beds_{tag}.png", v_ms, r_ms, tag, out["routine_e2e_over_time"])
    fcm = out["features_cost"]
    print(f"\n{'run':<28} {'alarms':>6} {'verdicts':>8} {'degraded':>8} {'late unflagged':>14} {'verdict p50/p99 ms':>20} "
          f"{'routine p50/p99 ms':>20} {'windows':>13} {'max |diff|':>10}")
    oc = out.get("offline_check", {})
    print(f"{tag:<28} {out['alarms']:>6} {len(verdicts):>8} {out['verdicts_degraded']:>8} {late_unflagged:>14} "
          f"{out['verdict_e2e_ms'].get('p50')}/{out['verdict_e2e_ms'].get('p99'):>9} {out['routine_e2e_ms'].get('p50')}/{out['routine_e2e_ms'].get('p99'):>9} "
          f"{len(scores):>6}/{expected:<6} {oc.get('max_abs_diff')}")
    print(f"\nCPU while every bed streams ({steady.get('interval_s')} s, {steady.get('windows')} windows): "
          f"{out['cpu_ms_per_window']} ms per window")
    for k, v in out["cpu_s_by_process"].items():
        print(f"  {k:<44} {v:8.2f} s  {v / max(1, steady.get('windows', 1)) * 1e3:7.3f} ms/window")
    print("consumer loop (main thread CPU / wall, ms per window) and cascade components (ms per routine window):")
    for k, v in out["profile"].items():
        print(f"  {k:<44} {v}")
    print(f"peak resident memory (MiB): {out['peak_rss_mib']}")
    print(f"features_cost on this machine: {fcm}; load avg mean/max {out['load_avg_1m']}; wrote {path}")
    return 0


def _plot(path: Path, v_ms, r_ms, tag: str, over: list | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4))
    if over:
        x = [b["from_s"] for b in over]
        for key, style in (("p50", "o-"), ("p99", "s-"), ("max", "^:")):
            ax2.plot(x, [b[key] for b in over], style, ms=3, label=f"routine {key}")
        ax2.axhline(1000, color="k", lw=0.8, ls="--")
        ax2.set_yscale("log")
        ax2.set_xlabel("s since the first message (10 s bins, by publication time)")
        ax2.set_ylabel("end-to-end ms")
        ax2.set_title("routine windows over the run")
        ax2.legend(fontsize=8)
    for v, label in ((v_ms, "verdicts (from the alarm's sample)"), (r_ms, "routine windows (from the last sample)")):
        if len(v):
            x = np.sort(v)
            ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=f"{label}, n={len(x)}")
    ax.axvline(1000, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end ms (published on icu.risk)")
    ax.set_ylabel("fraction")
    ax.set_title(f"holmes serve, {tag}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
