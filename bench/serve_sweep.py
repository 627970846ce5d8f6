"""Beds sweep on the served path: ``bench/serve_beds.py`` (``holmes serve``: cascade for routine windows, verdict
lane, Ray Serve, embedded broker; ``holmes replay`` in real time from another process) at each bed count, with a
ward's alarm rate (every ``--alarm-every``-th bed raises its record's alarm, the patients' starts spread over
``--stagger-s``), and a burst case (the same alarms all in one second). One table: p50/p95/p99 e2e for routine windows and
verdicts, windows lost (not published within 60 s of the replay's end; of them, overwritten in the ring before they
could be cut), CPU per window (all processes, and without the load generator), load average, and
``bench/features_cost.py``'s figure for the machine it ran on; the largest bed count whose routine windows and
verdicts both hold p99 < 1 s with nothing lost.

    .venv/bin/python bench/serve_sweep.py                                  # 250 500 1000 2000 beds + burst at 500
    .venv/bin/python bench/serve_sweep.py --beds 300 600 --burst-beds 0
    .venv/bin/python bench/serve_sweep.py --beds 250 375 500 --reuse          # add a level, keep the ones already run

Each level runs alone (a fresh ``holmes serve``; ~4-5 min each on 2 cores). Writes bench/results/serve_sweep.json and
.png (the levels' own JSON stay as bench/results/serve_beds_sweep_<beds>[_burst].json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _servebench import machine, write_json  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def run_level(beds: int, args, burst: bool) -> dict:
    tag = f"sweep_{beds}" + ("_burst" if burst else "") + args.suffix
    if args.reuse and (RESULTS / f"serve_beds_{tag}.json").is_file():
        print(f"[sweep] {beds} beds{' (burst)' if burst else ''}: reusing bench/results/serve_beds_{tag}.json", flush=True)
        return row_of(beds, burst, tag)
    cmd = [sys.executable, str(ROOT / "bench" / "serve_beds.py"), "--beds", str(beds), "--stagger-s", "0" if burst else str(args.stagger_s),
           "--start-s", str(args.start_s), "--end-s", str(args.end_s), "--alarm-every", str(args.alarm_every), "--tag", tag,
           "--no-offline-check"] + (["--serve-args", args.serve_args] if args.serve_args else [])
    print(f"[sweep] {beds} beds{' (burst)' if burst else ''}: {' '.join(cmd[1:])}", flush=True)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        return {"beds": beds, "burst": burst, "error": p.stderr[-2000:]}
    return row_of(beds, burst, tag)


def row_of(beds: int, burst: bool, tag: str) -> dict:
    d = json.loads((RESULTS / f"serve_beds_{tag}.json").read_text())
    r, v = d["routine_e2e_ms"], d["verdict_e2e_ms"]
    lost = d["expected_windows"] - d["windows_published"]
    holds = bool(r.get("p99", 1e9) < 1000 and (v.get("n", 0) == 0 or v.get("p99", 1e9) < 1000) and lost == 0
                 and d["verdicts"] == d["alarms"])
    row = {"beds": beds, "burst": burst, "alarms": d["alarms"], "verdicts": d["verdicts"], "verdicts_degraded": d["verdicts_degraded"],
           "routine_e2e_ms": r, "verdict_e2e_ms": v, "windows_expected": d["expected_windows"], "windows_lost": lost,
           "windows_lost_ring": (d.get("consumer_metrics") or {}).get("windows", {}).get("windows_lost"),  # cut too late: overwritten
           "cpu_ms_per_window": d["cpu_ms_per_window"], "cpu_s_by_process": d["cpu_s_by_process"], "profile": d["profile"],
           "steady_windows": d["steady_state"].get("windows", 0), "cores_busy": d["steady_state"].get("cores_busy"),
           "load_avg_1m": d["load_avg_1m"], "features_cost": d["features_cost"], "holds": holds, "json": f"serve_beds_{tag}.json"}
    print(f"[sweep] {beds} beds: routine p99 {r.get('p99')} ms, verdict p99 {v.get('p99')} ms, lost {lost}, "
          f"CPU {d['cpu_ms_per_window']} ms/window, holds {holds}", flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beds", type=int, nargs="+", default=[250, 500, 1000, 2000])
    ap.add_argument("--burst-beds", type=int, default=500, help="bed count of the burst case (0: none)")
    ap.add_argument("--alarm-every", type=int, default=20)
    ap.add_argument("--stagger-s", type=float, default=30.0)
    ap.add_argument("--start-s", type=float, default=200.0)
    ap.add_argument("--end-s", type=float, default=300.0)
    ap.add_argument("--reuse", action="store_true", help="levels whose serve_beds_sweep_<beds> JSON exists are read, not run again")
    ap.add_argument("--serve-args", default="", help="extra holmes serve options for every level, e.g. '--routine-hold-ms 0'")
    ap.add_argument("--suffix", default="", help="result names get this suffix (serve_sweep<suffix>.json, serve_beds_sweep_<beds><suffix>.json)")
    args = ap.parse_args()
    rows = [run_level(b, args, False) for b in args.beds]
    if args.burst_beds:
        rows.append(run_level(args.burst_beds, args, True))
    ok = [r["beds"] for r in rows if r.get("holds") and not r["burst"]]
    out = {"machine": machine(), "command": " ".join(sys.argv), "serve_args": args.serve_args, "alarm_every": args.alarm_every,
           "stagger_s": args.stagger_s,
           "record_s": [args.start_s, args.end_s], "rows": rows, "largest_beds_holding": max(ok) if ok else None}
    path = write_json(f"serve_sweep{args.suffix}.json", out)
    _plot(rows, RESULTS / f"serve_sweep{args.suffix}.png")
    print(f"\n{'beds':>6} {'case':>7} {'alarms':>6} {'routine p50/p95/p99 ms':>26} {'verdict p50/p99 ms':>20} {'lost':>6} "
          f"{'CPU ms/window (w/o gen)':>24} {'load':>5} {'features ms':>11} holds")
    for r in rows:
        if "error" in r:
            print(f"{r['beds']:>6} error: {r['error'][-200:]}")
            continue
        rr, vv, fc = r["routine_e2e_ms"], r["verdict_e2e_ms"], r["features_cost"]["rows"][0]["median_ms"]
        print(f"{r['beds']:>6} {'burst' if r['burst'] else 'ward':>7} {r['alarms']:>6} {rr.get('p50')}/{rr.get('p95')}/{rr.get('p99'):>10} "
              f"{vv.get('p50')}/{vv.get('p99'):>10} {r['windows_lost']:>6} {r['cpu_ms_per_window']['all']:>11} "
              f"({r['cpu_ms_per_window']['without_load_generator']}) {r['load_avg_1m']['mean']:>5} {fc:>11.3f} {r['holds']}")
    print(f"largest bed count holding p99 < 1 s (routine and verdicts), nothing lost: {out['largest_beds_holding']}; wrote {path}")
    return 0


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ward = [r for r in rows if "error" not in r and not r["burst"]]
    if not ward:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    beds = [r["beds"] for r in ward]
    for key, style in (("routine_e2e_ms", "o-"), ("verdict_e2e_ms", "s--")):
        a1.plot(beds, [r[key].get("p99", float("nan")) / 1e3 for r in ward], style, label=key.split("_")[0] + " p99")
        a1.plot(beds, [r[key].get("p50", float("nan")) / 1e3 for r in ward], style, alpha=0.4, label=key.split("_")[0] + " p50")
    a1.axhline(1.0, color="r", lw=0.8, label="1 s")
    a1.set_yscale("log")
    a1.set_xlabel("beds (real time, 250 Hz x 4 signals)")
    a1.set_ylabel("end to end (s)")
    a1.set_title("served path: latency against beds")
    a1.legend(fontsize=8)
    groups = {}
    for r in ward:
        n = max(1, r["steady_windows"])  # windows published while every bed streamed (the CPU's span)
        for k, v in r["cpu_s_by_process"].items():
            g = "Ray Serve members" if k.startswith("ray::holmes:member") else ("Ray (other)" if k.startswith("ray") and "Ingress" not in k else k)
            groups.setdefault(g, {})[r["beds"]] = groups.setdefault(g, {}).get(r["beds"], 0.0) + v / n * 1e3
    bottom = [0.0] * len(beds)
    for g, vals in sorted(groups.items(), key=lambda kv: -sum(kv[1].values())):
        h = [vals.get(b, 0.0) for b in beds]
        a2.bar([str(b) for b in beds], h, bottom=bottom, label=g)
        bottom = [x + y for x, y in zip(bottom, h)]
    a2.set_xlabel("beds")
    a2.set_ylabel("CPU ms per window")
    a2.set_title("where the CPU goes (all processes of the run)")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
