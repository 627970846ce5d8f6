"""Median cost of the signal features for one 16 s window of real records (target <= 5 ms), per engine.

    .venv/bin/python bench/features_cost.py [--data DIR] [--repeats 5]

Writes bench/results/features_cost.json and prints a table: median/p90 per window over every record's
alarm window (4 signals where the record has them), one thread. ``rows`` are the reference engine (scipy/numpy per
row): the machine-speed figure that every capacity figure carries, comparable with the figures before the compiled
engine. ``compiled_rows`` time the default engine (``models.beat_kernels``) in the same run, the engines taking
turns, and ``compiled_speedup`` is the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from models.data import alarm_window, load_dataset, resolve_data_dir
from models.beat_kernels import available
from models.features import N_FEATURES, extract, extract_batch
from models.tables import format_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "features_cost.json"))
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    records, _ = load_dataset(resolve_data_dir(args.data))
    windows = [(alarm_window(r), r.mask) for r in records]
    W = np.stack([w for w, _ in windows])
    M = np.stack([m for _, m in windows])
    warnings.simplefilter("ignore", RuntimeWarning)
    engines = ["reference"] + (["compiled"] if available() else [])
    for e in engines:  # compile / load the kernels and warm the caches before timing
        extract_batch(W[:64], M[:64], engine=e)
    times = {e: {3: [], 4: []} for e in engines}
    per_batch = {e: [] for e in engines}
    for _ in range(args.repeats):  # the engines alternate, so a change of the machine's speed hits both
        for e in engines:
            for (w, m), r in zip(windows, records):
                t = time.perf_counter()
                extract(w, m, engine=e)
                times[e][min(4, max(3, int(m[:4].sum() + m[4])))].append(time.perf_counter() - t)
            for i in range(0, len(W) - 63, 64):
                t = time.perf_counter()
                extract_batch(W[i : i + 64], M[i : i + 64], engine=e)
                per_batch[e].append((time.perf_counter() - t) / 64)

    def rows_of(e):
        all_t = np.array(times[e][3] + times[e][4]) * 1e3
        four = np.array(times[e][4]) * 1e3
        batch = np.array(per_batch[e]) * 1e3
        return [{"case": c, "engine": e, "n": n, "median_ms": float(np.median(x)), "p90_ms": float(np.percentile(x, 90))}
                for c, x, n in (("all windows", all_t, len(all_t)), ("4-signal windows", four, len(four)),
                                ("batch of 64 (per window)", batch, len(batch) * 64))]

    rows = rows_of("reference")
    med = rows[2]["median_ms"]
    out = {"window_s": 16, "fs_hz": 250, "n_features": N_FEATURES, "rows": rows, "target_ms": 5.0,
           "beds_per_core_at_1hz": int(1000 / med), "load_average_1min": __import__("os").getloadavg()[0],
           "note": "rows: the reference engine (scipy/numpy per row), the machine-speed figure every capacity figure carries"}
    table = list(rows)
    if "compiled" in engines:
        comp = rows_of("compiled")
        out["compiled_rows"] = comp
        out["compiled_speedup"] = {r["case"]: round(r["median_ms"] / c["median_ms"], 3) for r, c in zip(rows, comp)}
        out["compiled_beds_per_core_at_1hz"] = int(1000 / comp[2]["median_ms"])
        table += comp
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(format_table(table, [("case", "case", ""), ("engine", "engine", ""), ("n", "windows", "d"), ("median_ms", "median ms", ".2f"),
                               ("p90_ms", "p90 ms", ".2f")]))
    print(f"=> {out['beds_per_core_at_1hz']} beds per core at one 16 s window per second (reference, batched; load average "
          f"{out['load_average_1min']:.1f}); wrote {args.out}")
    if "compiled" in engines:
        print("compiled / reference speed-up: " + ", ".join(f"{k} {v:.2f}x" for k, v in out["compiled_speedup"].items())
              + f" => {out['compiled_beds_per_core_at_1hz']} beds per core (compiled, batched)")


if __name__ == "__main__":
    main()
