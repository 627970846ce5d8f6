"""Shared pieces of the serve benchmarks: a Ray instance sized for 2 cores, real windows, percentiles."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def start_ray(port: int = 8011):
    from deploy.runtime import start_local

    return start_local(2, "127.0.0.1", port)


def real_windows(n: int = 64, window_s: float = 16.0, seed: int = 0):
    """``n`` real alarm windows (records drawn at random, with repetition when n > records)."""
    from models.data import alarm_window, list_records, load_dataset, resolve_data_dir

    data = resolve_data_dir()
    infos = list_records(data)
    rng = np.random.default_rng(seed)
    names = [infos[i].name for i in rng.choice(len(infos), size=min(n, len(infos)), replace=False)]
    recs, _ = load_dataset(data, names)
    idx = np.arange(n) % len(recs)
    w = np.stack([alarm_window(recs[i], window_s) for i in idx])
    m = np.stack([recs[i].mask for i in idx])
    a = [recs[i].alarm_type for i in idx]
    return w, m, a


def features_cost() -> dict:
    """``bench/features_cost.py`` on this machine (2 repeats): the speed figure every capacity figure carries."""
    import subprocess
    import sys
    import tempfile

    out = Path(tempfile.mkdtemp()) / "features_cost.json"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "bench" / "features_cost.py"), "--repeats", "2", "--out", str(out)], check=True,
                   cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else float("nan")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_1m": os.getloadavg()[0], "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def write_json(name: str, obj: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(_strict(obj), indent=1, default=float, allow_nan=False))
    return path


def _strict(obj):
    """NaN / inf -> null, so that jq and other strict JSON readers take the results."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, np.generic):
        return _strict(obj.item())
    return obj


def member_window_s(profiles: dict, names) -> float:
    ws = {float(profiles[n].get("inputs", {}).get("window_s", 16.0)) for n in names}
    if len(ws) != 1:
        raise SystemExit(f"members need different window lengths {sorted(ws)}: benchmark them separately")
    return ws.pop()


def _proc_group(cmd: list[str], own: dict[int, str], pid: int) -> str:
    """Which part of the system a process is: the ones started by the bench by pid, Ray's by its process title."""
    if pid in own:
        return own[pid]
    head = cmd[0] if cmd else ""
    if head.startswith("ray::"):
        return head.replace("ServeReplica:", "").split(".")[0]  # ray::<app>:<deployment>, ray::ServeController, ...
    base = os.path.basename(head)
    if base in ("raylet", "gcs_server", "tansu", "weed") or "dashboard" in " ".join(cmd[:3]):
        return "ray:" + base if base in ("raylet", "gcs_server") else ("ray:dashboard" if "dashboard" in " ".join(cmd[:3]) else base)
    if "--consumer-only" in cmd:  # holmes serve --consumers N: the extra consumer processes
        return "holmes serve (extra consumers)"
    joined = " ".join(cmd[:4])
    if "spawn_main" in joined:  # streams.parallel's scoring workers (holmes serve --score-workers)
        return "scoring workers (spawned)"
    if "ray" in joined and ("_private" in joined or "ray/" in joined):
        return "ray:other"
    return "other"


def _scan(own: dict[int, str]):
    """(group, /proc/<pid>/stat fields after the command) of every process on the machine."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = [c.decode(errors="replace") for c in f.read().split(b"\0") if c]
        except OSError:
            continue
        yield _proc_group(cmd, own, int(d)), stat[stat.rindex(")") + 2 :].split()


def cpu_by_process(own: dict[int, str] | None = None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every process on the machine, summed per group (``_proc_group``):
    two calls around a run give where its CPU went. ``own``: pid -> name for processes the caller started (their
    threads included; children are grouped by their own titles)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for g, fields in _scan(own or {}):
        out[g] = out.get(g, 0.0) + (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def rss_by_process(own: dict[int, str] | None = None) -> dict[str, float]:
    """Resident memory (MiB) now, summed per group (``_proc_group``)."""
    page = os.sysconf("SC_PAGE_SIZE")
    out: dict[str, float] = {}
    for g, fields in _scan(own or {}):
        out[g] = out.get(g, 0.0) + int(fields[21]) * page / 2**20  # rss, pages
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per group between two ``cpu_by_process`` calls (processes that ended in between are missing: their
    CPU is not counted, so take the second call while the run's processes are alive)."""
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in sorted(after, key=lambda k: -(after[k] - before.get(k, 0.0)))
            if after[k] - before.get(k, 0.0) > 0.005}


def over_time(ms, published_unix_s, t0: float | None, bucket_s: float = 10.0) -> list[dict]:
    """e2e percentiles of the windows published in each ``bucket_s`` of the run (seconds from the first message, else
    from the first publication): whether a tail is a transient or the steady state."""
    ms, t = np.asarray(ms, dtype=float), np.asarray(published_unix_s, dtype=float)
    if not len(ms):
        return []
    k = np.floor((t - (t0 if t0 is not None else t.min())) / bucket_s).astype(int)
    out = []
    for b in np.unique(k):
        v = ms[k == b]
        out.append({"from_s": round(float(b * bucket_s), 1), "n": int(len(v)), "p50": round(float(np.percentile(v, 50)), 1),
                    "p99": round(float(np.percentile(v, 99)), 1), "max": round(float(v.max()), 1)})
    return out
