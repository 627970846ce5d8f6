"""Beds sustained by ONE consumer process: end-to-end latency (sample time -> score acknowledged by the broker)
against the number of simultaneous patients, 250 Hz x 4 signals, 16 s windows every 1 s, real time.

For each bed count a fresh topic namespace on one embedded broker; `holmes replay` (its own process) streams
N patients in real time (phases staggered over each second), `holmes consume` (its own process) scores them
with the scorer under test. Also measures produce and consume throughput at max speed.

    .venv/bin/python bench/stream_beds.py                       # feature model (registry best, else fitted)
    .venv/bin/python bench/stream_beds.py --scorer stats --beds 250 500 1000 2000
    .venv/bin/python bench/stream_beds.py --score-workers 2 --beds 200 400 700 1000   # features over 2 processes

Writes bench/results/stream_beds_<scorer>[_w<workers>].json and .png, prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
FOUR_SIGNAL = ["a109l", "a134s", "a145l", "a161l", "a163l", "a167l", "a171l", "a172s", "a186s", "a225l", "a226s", "a266s"]


def build_member(kind: str, path: Path) -> str:
    from models.data import load_dataset, resolve_data_dir

    if kind == "features":
        from streams.feature_scorer import best_registry_member, fit_on_data

        found = best_registry_member()
        member = found[0] if found else fit_on_data()
    else:
        sys.path.insert(0, str(ROOT / "tests" / "streams"))
        from members import StatsMember

        recs, _ = load_dataset(resolve_data_dir(), None)
        member = StatsMember().fit(recs)
    path.write_bytes(pickle.dumps(member))
    return member.name


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "streams")])}


def run_level(bs: str, beds: int, member_path: Path, stream_s: float, speed: str, tag: str, tmp: Path, workers: int = 1) -> dict:
    holmes = [sys.executable, "-m", "holmes.cli"]
    metrics = tmp / f"{tag}.json"
    cons = subprocess.Popen(holmes + ["consume", "--bootstrap-servers", bs, "--topic-prefix", tag, "--scorer", "member",
                                      "--member-path", str(member_path), "--metrics-json", str(metrics),
                                      "--group-id", tag, "--score-workers", str(workers)], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=open(tmp / f"{tag}.consume.log", "wb"))
    time.sleep(8.0 if workers == 1 else 14.0)  # imports (+ worker processes loading the member) + group join
    t0 = time.time()
    rep = subprocess.run(holmes + ["replay", "--bootstrap-servers", bs, "--topic-prefix", tag, "--beds", str(beds),
                                   "--records", *FOUR_SIGNAL, "--speed", speed, "--end-s", str(stream_s)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True)
    if rep.returncode != 0:
        raise RuntimeError(rep.stderr[-2000:])
    produce = json.loads(rep.stdout[rep.stdout.index("{"):])
    expected = beds * (int(stream_s) - 16 + 1)
    # let the consumer drain, then Ctrl-C it (it commits and writes its metrics)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(2.0)
        log = (tmp / f"{tag}.consume.log").read_text(errors="replace")
        if f"windows {expected}," in log or time.time() - t0 > stream_s / (float(speed) if speed != "max" else 1e9) + 60:
            break
    cons.send_signal(2)
    cons.wait(60)
    if not metrics.is_file():
        return {"beds": beds, "speed": speed, "produce": produce, "error": "consumer wrote no metrics (crashed)",
                "e2e_ms": {}, "windows_scored": 0, "windows_expected": expected}
    m = json.loads(metrics.read_text())
    busy_s = max(m.get("active_s") or m["uptime_s"] - 8.0, 1e-9)
    return {"beds": beds, "speed": speed, "produce": produce, "windows_scored": m["counters"].get("windows_scored", 0),
            "windows_expected": expected, "e2e_ms": m["e2e_ms"], "score_batch_ms": m["score_batch_ms"],
            "batch_size": m["batch_size"], "dead_letters": m["counters"].get("dead_letters", 0),
            "consume_messages_per_s": round(m["counters"].get("messages", 0) / busy_s, 1),
            "consumer_cpu_s": m.get("process_cpu_s"), "load_avg_1m": m.get("load_avg_1m"),
            "consumer_cpu_ms_per_window": round(1e3 * m["process_cpu_s"] / max(m["counters"].get("windows_scored", 0), 1), 3)
            if m.get("process_cpu_s") else None,
            # CPU from the first message on (imports, model load, group join excluded): the per-window cost itself
            "consumer_active_cpu_ms_per_window": round(1e3 * m["active_cpu_s"] / max(m["counters"].get("windows_scored", 0), 1), 3)
            if m.get("active_cpu_s") else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scorer", choices=["features", "stats"], default="features")
    ap.add_argument("--beds", type=int, nargs="+", default=[50, 100, 200, 400, 1000])
    ap.add_argument("--stream-s", type=float, default=46.0, help="record seconds replayed per level (30 windows)")
    ap.add_argument("--throughput-beds", type=int, default=1000)
    ap.add_argument("--score-workers", type=int, default=1, help="processes scoring each tick (consume --score-workers)")
    args = ap.parse_args()
    from streams.broker import EmbeddedBroker

    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="holmes-bench-"))
    member_path = tmp / "member.pkl"
    name = build_member(args.scorer, member_path)
    rows = []
    with EmbeddedBroker() as broker:
        for beds in args.beds:
            r = run_level(broker.bootstrap_servers, beds, member_path, args.stream_s, "1", f"b{beds}", tmp, args.score_workers)
            rows.append(r)
            e = r["e2e_ms"]
            print(f"beds {beds:5d}  windows {r['windows_scored']:6d}/{r['windows_expected']:<6d}  e2e p50 {e.get('p50')} ms"
                  f"  p99 {e.get('p99')} ms  batch p50 {r.get('batch_size', {}).get('p50')}  score p50 {r.get('score_batch_ms', {}).get('p50')} ms"
                  f"  cpu/window {r.get('consumer_cpu_ms_per_window')} ms (active {r.get('consumer_active_cpu_ms_per_window')} ms)  load {r.get('load_avg_1m')}  {r.get('error', '')}",
                  flush=True)
        thr = run_level(broker.bootstrap_servers, args.throughput_beds, member_path, 30.0, "max", "tmax", tmp, args.score_workers)
    out = {"scorer": args.scorer, "member": name, "window_s": 16.0, "hop_s": 1.0, "signals": 4, "fs_hz": 250,
           "cpu_count": os.cpu_count(), "score_workers": args.score_workers, "levels": rows, "max_speed": thr}
    path = RESULTS / f"stream_beds_{args.scorer}{'' if args.score_workers == 1 else f'_w{args.score_workers}'}.json"
    path.write_text(json.dumps(out, indent=2))
    plot(out, path.with_suffix(".png"))
    print(f"\nmax speed, {args.throughput_beds} beds x 30 s: produce {thr['produce']['messages_per_s']} msg/s "
          f"({thr['produce']['mb_per_s']} MB/s), consume+score {thr['consume_messages_per_s']} msg/s, "
          f"windows {thr['windows_scored']}/{thr['windows_expected']}")
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


def plot(out: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lv = [r for r in out["levels"] if r["e2e_ms"].get("n")]
    beds = [r["beds"] for r in lv]
    fig, ax = plt.subplots(figsize=(6, 4))
    for q, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^-")):
        ax.plot(beds, [r["e2e_ms"][q] for r in lv], style, label=q)
    ax.axhline(1000, color="red", lw=1, ls=":", label="1 s SLO")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simultaneous beds (250 Hz x 4 signals, 16 s window every 1 s)")
    ax.set_ylabel("sample time -> score published (ms)")
    w = out.get("score_workers", 1)
    ax.set_title(f"one consumer process, scorer {out['member']}" + (f", scoring over {w} processes" if w > 1 else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
