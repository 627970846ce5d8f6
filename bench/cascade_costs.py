"""Cost of each cascade component on the real alarm windows, measured in ONE run (one thread):
the single-lead features against the full multi-signal features (median and p90 per window over all 300
windows), the rung models at batch 64, and the full ensemble in process at batch 64.

    .venv/bin/python bench/cascade_costs.py

Writes bench/results/cascade_costs.json and prints a table.
"""

from __future__ import annotations

import sys
import time
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
    from models.features import extract
    from models.tables import format_table
    from unfold.evaluate import model_ms
    from unfold.fit import measure_ensemble
    from unfold.lead import lead_features, lead_features_batch
    from unfold.persist import load

    recs, _ = load_dataset(resolve_data_dir())
    recs = [r for r in recs if r.label is not None]
    fitted = load()
    rows = []
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (("lead_features (1 ECG lead, 12 features)", lead_features), ("models.features.extract (4 signals, all features)", extract)):
            ts = []
            for r in recs:
                w = alarm_window(r, 16.0)
                t0 = time.perf_counter()
                fn(w, r.mask)
                ts.append((time.perf_counter() - t0) * 1e3)
            rows.append({"component": name, "ms_per_window": float(np.median(ts)), "p90_ms": float(np.percentile(ts, 90)), "n": len(ts)})
        W = np.stack([alarm_window(r, 16.0) for r in recs])
        M = np.stack([r.mask for r in recs])
        at = [r.alarm_type for r in recs]
        lead_X = lead_features_batch(W, M)
        from models.features import extract_batch

        feat_X = extract_batch(W, M)
        for name, model in fitted.models.items():
            X = lead_X if name.startswith("lead") else feat_X
            rows.append({"component": f"{name} (model on feature rows, batch 64)", "ms_per_window": model_ms(model, X, at), "n": 64})
    ens = measure_ensemble(fitted.ensemble, recs)
    rows.append({"component": f"ensemble {fitted.ensemble.name} ({len(fitted.ensemble.members)} members, in process, batch 64)",
                 "ms_per_window": ens["ms"], "macs": ens["macs"], "n": 64})
    lead, full = rows[0]["ms_per_window"], rows[1]["ms_per_window"]
    out = {"machine": machine(), "rows": rows, "lead_vs_full_features_x": full / lead, "ensemble_vs_lead_x": ens["ms"] / lead}
    path = write_json("cascade_costs.json", out)
    print(format_table(rows, [("component", "component", ""), ("ms_per_window", "ms/window", ".4f"), ("p90_ms", "p90 ms", ".3f")]))
    print(f"\nsingle-lead features are {full / lead:.1f}x cheaper than the full features; the ensemble costs {ens['ms'] / lead:.0f}x "
          f"the single-lead features; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
