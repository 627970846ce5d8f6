"""Flaps avoided by the risk alarm's hysteresis, on the risk curves of the development records.

    .venv/bin/python bench/risk_hysteresis.py [--from-s 200] [--raise-at 0.7] [--clear-below 0.5] [--hold-s 10]

Each record's continuous risk is the calibrated P(true alarm) of ``features-vote`` on the 16 s window ending
every second from ``--from-s`` to the alarm (300 s), cut as the stream cuts it (``streams.offline.record_windows``:
the default alarm type until the alarm, absent slots masked). The model that scores a record never saw it: the records
are split into the registry's 5 folds and fold k is scored by a model fitted on the others (its calibration
map too, on that model's inner out-of-fold predictions). Counted per record: raises of a plain line
(``risk >= raise_at``) against raises of ``streams.hysteresis.RiskHysteresis``, and whether the alarm is on
at 300 s for true and for false monitor alarms. Writes ``<out>.json`` and ``<out>.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def risk_curves(records, ends_s, folds, progress=True):
    """[R, T] calibrated risk per record and window end, each fold scored by a model fitted without it."""
    from tqdm import tqdm

    from models.calibration import fit_on_oof
    from models.data import cv_folds
    from streams.offline import OfflineConfig, record_windows
    from models.evaluate import alarm_features
    from models.feature_models import make_feature_model
    from models.features import extract_batch

    y = np.array([r.label for r in records])
    at = np.array([r.alarm_type for r in records])
    F = alarm_features(records)
    out = np.empty((len(records), len(ends_s)))
    bar = tqdm(total=len(records), desc="risk curves", unit="rec", disable=not progress)
    for k in np.unique(folds):
        tr, te = folds != k, np.flatnonzero(folds == k)
        m = make_feature_model("features-vote").fit(F[tr], at[tr], y[tr])
        # its calibration map: fitted on the model's inner out-of-fold predictions over its own training records
        inner = m.inner_oof(F[tr], at[tr], y[tr])
        inner_folds = cv_folds([records[i].info for i in np.flatnonzero(tr)], m.inner_splits, seed=m.seed + 1000)
        cal = fit_on_oof(inner, y[tr], inner_folds)
        cfg = OfflineConfig(start_s=float(ends_s[0]) - 16.0, end_s=float(ends_s[-1]))
        for i in te:  # the windows, masks and alarm context the stream cuts (streams.offline.record_windows)
            wins = list(record_windows(records[i], cfg))
            X = extract_batch(np.stack([w[1] for w in wins]), np.stack([w[2] for w in wins]))
            out[i] = cal.transform(m.proba_from_features(X, [w[3] for w in wins]))
            bar.update()
    bar.close()
    return out


def main(argv=None) -> int:
    from models.data import load_dataset, resolve_data_dir
    from models.registry import Registry
    from streams.hysteresis import HysteresisConfig, RiskHysteresis, count_transitions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-s", type=float, default=200.0)
    ap.add_argument("--raise-at", type=float, default=HysteresisConfig.raise_at)
    ap.add_argument("--clear-below", type=float, default=HysteresisConfig.clear_below)
    ap.add_argument("--hold-s", type=float, default=HysteresisConfig.hold_s)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "risk_hysteresis"))
    args = ap.parse_args(argv)
    cfg = HysteresisConfig(args.raise_at, args.clear_below, args.hold_s)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records, _ = load_dataset(resolve_data_dir())
    records = [r for r in records if r.label is not None][: args.limit]
    reg = Registry()
    fold_of = {}
    for p in reg.profiles():
        if p["name"] == "features-vote":
            fold_of = dict(zip(p["oof"]["records"], p["oof"]["fold"]))
    folds = np.array([int(fold_of[r.name]) for r in records])
    ends = np.arange(args.from_s, 300.0 + 1e-9, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        risk = risk_curves(records, ends, folds)
    naive = risk >= cfg.raise_at
    hyst = np.zeros_like(naive)
    for i, r in enumerate(records):
        h = RiskHysteresis(cfg)
        hyst[i] = [h.update(r.name, float(t), float(p)) for t, p in zip(ends, risk[i])]
    n_naive = np.array([count_transitions(s) for s in naive])
    n_hyst = np.array([count_transitions(s) for s in hyst])
    y = np.array([r.label for r in records]).astype(bool)
    hours = len(records) * len(ends) / 3600.0
    doc = {
        "command": "bench/risk_hysteresis.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.__dict__, "n_records": len(records), "window_ends_s": [float(ends[0]), float(ends[-1])],
        "hours_of_risk_curve": round(hours, 2),
        "raises_plain_line": int(n_naive.sum()), "raises_hysteresis": int(n_hyst.sum()),
        "flaps_avoided": int(n_naive.sum() - n_hyst.sum()),
        "raises_per_hour": {"plain": round(n_naive.sum() / hours, 2), "hysteresis": round(n_hyst.sum() / hours, 2)},
        "records_with_3plus_raises": {"plain": int((n_naive >= 3).sum()), "hysteresis": int((n_hyst >= 3).sum())},
        "on_at_alarm": {
            "true_alarms": {"plain": float(naive[y, -1].mean()), "hysteresis": float(hyst[y, -1].mean())},
            "false_alarms": {"plain": float(naive[~y, -1].mean()), "hysteresis": float(hyst[~y, -1].mean())},
        },
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    _plot(out.with_suffix(".png"), ends, risk, naive, hyst, n_naive, records, cfg)
    print(json.dumps({k: doc[k] for k in ("raises_plain_line", "raises_hysteresis", "flaps_avoided", "raises_per_hour",
                                          "records_with_3plus_raises", "on_at_alarm", "wall_s")}, indent=1))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


def _plot(path, ends, risk, naive, hyst, n_naive, records, cfg) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pick = np.argsort(-n_naive, kind="stable")[:4]  # the records whose plain line flaps most
    fig, axes = plt.subplots(len(pick), 1, figsize=(10, 1.9 * len(pick)), sharex=True, squeeze=False)
    for ax, i in zip(axes[:, 0], pick):
        ax.plot(ends, risk[i], lw=1, color="k", label="calibrated risk")
        ax.axhline(cfg.raise_at, color="C3", ls=":", lw=0.8)
        ax.axhline(cfg.clear_below, color="C2", ls=":", lw=0.8)
        ax.fill_between(ends, 0, naive[i] * 0.5, step="post", color="C1", alpha=0.3, label=f"plain line ({n_naive[i]} raises)")
        ax.fill_between(ends, 0.5, 0.5 + hyst[i] * 0.5, step="post", color="C0", alpha=0.3, label="hysteresis")
        ax.set_ylim(0, 1)
        ax.set_title(f"{records[i].name} {records[i].alarm_type} ({'true' if records[i].label else 'false'} alarm at 300 s)", fontsize=8)
        ax.legend(fontsize=6, loc="upper left", ncol=3)
    axes[-1, 0].set_xlabel("window end (s); raise at %.2f, clear below %.2f after %g s" % (cfg.raise_at, cfg.clear_below, cfg.hold_s))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
