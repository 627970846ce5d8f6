"""Offline replay speed: every window (1 s hop) of every development record through the stream's scorers.

    .venv/bin/python bench/offline_replay.py [--scorers features,cascade] [--workers 2] [--limit N]

Runs ``streams.offline.replay_offline`` (what ``holmes replay --offline`` runs) once per scorer and reports windows,
hours of signal, wall time and x real time, with this machine's feature cost (``bench/features_cost.py``'s
batched median, measured here on 64 alarm windows) so the figure can be compared across machines. Writes
``bench/results/offline_replay.json`` and the risk curves of a few records around their alarms as a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from argparse import Namespace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def feature_ms_per_window(records, n: int = 64, repeats: int = 3) -> float:
    """Median batched cost (ms) of the full features per 16 s window on this machine."""
    from models.data import alarm_window
    from models.features import extract_batch

    W = np.stack([alarm_window(r) for r in records[:n]])
    M = np.stack([r.mask for r in records[:n]])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        extract_batch(W, M)
        times.append((time.perf_counter() - t) * 1e3 / len(W))
    return float(np.median(times))


def main(argv=None) -> int:
    import os

    from holmes.commands.stream import build_scorer
    from models.data import load_dataset, resolve_data_dir
    from streams.offline import OfflineConfig, replay_offline

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scorers", default="features,cascade")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "offline_replay"))
    args = ap.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records, _ = load_dataset(resolve_data_dir())
    records = records[: args.limit]
    feat_ms = feature_ms_per_window(records)
    runs, curves = {}, {}
    for name in [s for s in args.scorers.split(",") if s]:
        sargs = Namespace(scorer=name, registry=None, member_path=None, deadline_ms=1000.0, data_opt=None, score_workers=1)
        scorer = build_scorer(sargs, in_process=True)
        rows, stats = replay_offline(records, lambda: scorer, OfflineConfig(), workers=args.workers)
        runs[name] = stats
        curves[name] = rows
        print(f"{name:9s} {stats['windows']} windows, {stats['signal_s'] / 3600:.1f} h of signal in {stats['wall_s']:.1f} s: "
              f"{stats['x_real_time']:.0f}x real time ({args.workers} workers)", flush=True)
    doc = {"command": "bench/offline_replay.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
           "machine_features_ms_per_window_batched": round(feat_ms, 3), "runs": runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    _plot(out.with_suffix(".png"), curves, records)
    print(f"features on this machine: {feat_ms:.3f} ms/window batched; wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


def _plot(path, curves: dict, records) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = []
    for label in (1, 0):  # two true and two false alarms of different types
        seen = set()
        for r in records:
            if r.label == label and r.alarm_type not in seen and len(picks) < (2 if label else 4):
                picks.append(r)
                seen.add(r.alarm_type)
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 1.9 * len(picks)), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], picks):
        for k, (name, rows) in enumerate(curves.items()):
            mine = [row for row in rows if row["record"] == r.name and 200 <= row["window_end_s"] <= 330]
            ax.plot([m["window_end_s"] for m in mine], [np.nan if m["probability"] is None else m["probability"] for m in mine],
                    lw=1, color=f"C{k}", label=name)
        ax.axvline(300, color="r", ls=":", lw=1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{r.name} {r.alarm_type}: {'true' if r.label else 'false'} alarm at 300 s", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    axes[-1, 0].set_xlabel("window end (s), offline replay")
    fig.supylabel("P(true alarm)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
