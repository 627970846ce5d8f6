"""Median cost of the signal features for one 16 s window of real records (target <= 5 ms).

    .venv/bin/python bench/features_cost.py [--data DIR] [--repeats 5]

Writes bench/results/features_cost.json and prints a table: median/p90 per window over every record's
alarm window (4 signals where the record has them), one thread.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from models.data import alarm_window, load_dataset, resolve_data_dir
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
    times = {3: [], 4: []}
    warnings.simplefilter("ignore", RuntimeWarning)
    for _ in range(args.repeats):
        for (w, m), r in zip(windows, records):
            t = time.perf_counter()
            extract(w, m)
            times[min(4, max(3, int(m[:4].sum() + m[4])))].append(time.perf_counter() - t)
    W = np.stack([w for w, _ in windows])
    M = np.stack([m for _, m in windows])
    per_batch = []
    for _ in range(args.repeats):
        for i in range(0, len(W) - 63, 64):
            t = time.perf_counter()
            extract_batch(W[i : i + 64], M[i : i + 64])
            per_batch.append((time.perf_counter() - t) / 64)
    all_t = np.array(times[3] + times[4]) * 1e3
    rows = [
        {"case": "all windows", "n": len(all_t), "median_ms": float(np.median(all_t)), "p90_ms": float(np.percentile(all_t, 90))},
        {"case": "4-signal windows", "n": len(times[4]), "median_ms": float(np.median(times[4]) * 1e3), "p90_ms": float(np.percentile(times[4], 90) * 1e3)},
    ]
    rows.append({"case": "batch of 64 (per window)", "n": len(per_batch) * 64, "median_ms": float(np.median(per_batch) * 1e3),
                 "p90_ms": float(np.percentile(per_batch, 90) * 1e3)})
    med = rows[2]["median_ms"]
    out = {"window_s": 16, "fs_hz": 250, "n_features": N_FEATURES, "rows": rows, "target_ms": 5.0,
           "beds_per_core_at_1hz": int(1000 / med), "load_average_1min": __import__("os").getloadavg()[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(format_table(rows, [("case", "case", ""), ("n", "windows", "d"), ("median_ms", "median ms", ".2f"), ("p90_ms", "p90 ms", ".2f")]))
    print(f"=> {out['beds_per_core_at_1hz']} beds per core at one 16 s window per second (batched; load average {out['load_average_1min']:.1f}); wrote {args.out}")


if __name__ == "__main__":
    main()
