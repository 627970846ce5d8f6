"""Cost of each cascade component on the real alarm windows, measured in ONE run (one thread, batch 64 as in
the stream): the quick features (one ECG lead + one pulse, last 8 s, low rate) against the full multi-signal
features (median ms per window over the batches of 64 of the 300 windows, and one window at a time), the
rung models, and the full ensemble in process (shared preprocessing/extraction, and every member on its own).

    .venv/bin/python bench/cascade_costs.py

Writes bench/results/cascade_costs.json and prints a table.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _servebench import machine, write_json  # noqa: E402


def main() -> int:
    from threadpoolctl import threadpool_limits

    from models.data import alarm_window, load_dataset, resolve_data_dir
    from models.features import extract_batch
    from models.tables import format_table
    from unfold.evaluate import model_ms
    from unfold.fit import measure_ensemble
    from unfold.lead import quick_features_batch
    from unfold.oof import timed_batches
    from unfold.persist import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs, _ = load_dataset(resolve_data_dir())
    recs = [r for r in recs if r.label is not None]
    fitted = load()
    W = np.stack([alarm_window(r, 16.0) for r in recs])
    M = np.stack([r.mask for r in recs])
    at = [r.alarm_type for r in recs]
    rows = []
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (("quick_features (1 ECG lead + 1 pulse, last 8 s)", quick_features_batch),
                         ("features (models.features.extract_batch, 4 signals, 99 features)", extract_batch)):
            rows.append({"component": name, "ms_per_window": float(np.median(timed_batches(fn, W, M, 64)[1])),
                         "ms_one_at_a_time": float(np.median(timed_batches(fn, W, M, 1)[1]))})
        quick_X, feat_X = quick_features_batch(W, M), extract_batch(W, M)
        for name, model in fitted.models.items():
            X = quick_X if name.startswith("quick") else feat_X
            rows.append({"component": f"{name} (model on feature rows)", "ms_per_window": model_ms(model, X, at)})
    ens = measure_ensemble(fitted.ensemble, recs)
    rows.append({"component": f"ensemble {fitted.ensemble.name} ({len(fitted.ensemble.members)} members, shared preprocessing + features)",
                 "ms_per_window": ens["ms"], "macs": ens["macs"]})
    rows.append({"component": "  the same, every member on its own (as separate Serve deployments)", "ms_per_window": ens["ms_separate"],
                 "macs": ens["macs"]})
    quick, full = rows[0]["ms_per_window"], rows[1]["ms_per_window"]
    out = {"machine": machine(), "batch": 64, "rows": rows, "full_vs_quick_features_x": full / quick, "ensemble_vs_quick_features_x": ens["ms"] / quick}
    path = write_json("cascade_costs.json", out)
    print(format_table(rows, [("component", "component (batch 64, one thread)", ""), ("ms_per_window", "ms/window", ".4f"),
                              ("ms_one_at_a_time", "ms one at a time", ".3f"), ("macs", "MACs/window", ".3g")]))
    print(f"\nquick features are {full / quick:.1f}x cheaper than the full features; the ensemble costs {ens['ms'] / quick:.0f}x "
          f"the quick features; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
