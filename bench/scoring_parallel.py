"""What a second scoring process buys on this machine: the routine scorer (the best registry feature model, features
and model, batches of 64 real alarm windows) run by 1 process alone, then by 2 processes at once, each for
``--seconds``. Per process: windows scored per wall second and CPU ms per window; together: windows per second, and
the ratio to one process. On a machine whose 2 cores are two full cores the ratio is ~2; on one whose cores slow each
other down (shared physical core or memory bandwidth) it is lower, and ``holmes serve --score-workers 2`` costs
more CPU per window than it frees.

    .venv/bin/python bench/scoring_parallel.py [--seconds 20]

Writes bench/results/scoring_parallel.json and prints a table; carries bench/features_cost.py's figure.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _servebench import features_cost, machine, write_json  # noqa: E402

from models.tables import format_table  # noqa: E402


def _load(n: int):
    import warnings

    from models.data import alarm_window, load_dataset, resolve_data_dir
    from streams.feature_scorer import best_registry_member

    warnings.simplefilter("ignore")
    records, _ = load_dataset(resolve_data_dir(None))
    recs = records[:n]
    W = np.stack([alarm_window(r) for r in recs]).astype(np.float32)
    M = np.stack([r.mask for r in recs])
    return best_registry_member()[0], W, M, [r.alarm_type for r in recs]


def _worker(seconds: float, start_at: float, batch: int, out) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    member, W, M, A = _load(128)
    member.predict_proba(W[:batch], M[:batch], A[:batch])  # warm
    while time.time() < start_at:
        time.sleep(0.01)
    t0, c0, n, i = time.perf_counter(), time.process_time(), 0, 0
    while time.perf_counter() - t0 < seconds:
        a = (i * batch) % (len(W) - batch + 1)
        member.predict_proba(W[a : a + batch], M[a : a + batch], A[a : a + batch])
        n += batch
        i += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out.put({"windows": n, "wall_s": wall, "cpu_s": cpu, "windows_per_s": n / wall, "cpu_ms_per_window": cpu / n * 1e3})


def run(procs: int, seconds: float, batch: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 25.0  # every process loaded and warm before any starts timing
    ps = [ctx.Process(target=_worker, args=(seconds, start_at, batch, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = [q.get(timeout=seconds + 300) for _ in ps]
    for p in ps:
        p.join()
    return {"processes": procs, "per_process": got, "windows_per_s": sum(g["windows_per_s"] for g in got),
            "cpu_ms_per_window": float(np.mean([g["cpu_ms_per_window"] for g in got]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--name", default="scoring_parallel.json", help="file name in bench/results")
    args = ap.parse_args()
    fc = features_cost()
    rows = []
    for procs in (1, 2):
        print(f"[scoring_parallel] {procs} process(es) for {args.seconds:.0f} s ...", flush=True)
        rows.append(run(procs, args.seconds, args.batch))
    one, two = rows
    out = {"machine": machine(), "features_cost": fc, "command": " ".join(sys.argv), "batch": args.batch, "seconds": args.seconds,
           "rows": rows, "throughput_ratio_2_vs_1": two["windows_per_s"] / one["windows_per_s"],
           "cpu_per_window_ratio_2_vs_1": two["cpu_ms_per_window"] / one["cpu_ms_per_window"]}
    path = write_json(args.name, out)
    print(format_table([{"p": r["processes"], "wps": r["windows_per_s"], "cpu": r["cpu_ms_per_window"]} for r in rows],
                       [("p", "processes", "d"), ("wps", "windows/s (all)", ".0f"), ("cpu", "CPU ms/window", ".3f")]))
    print(f"=> 2 processes score {out['throughput_ratio_2_vs_1']:.2f}x the windows of 1, at {out['cpu_per_window_ratio_2_vs_1']:.2f}x "
          f"the CPU per window (bench/features_cost.py {fc['rows'][0]['median_ms']:.2f} ms/window); wrote {path}")


if __name__ == "__main__":
    main()
