"""The compiled feature engine against the reference on every window of the development records.

    .venv/bin/python bench/features_equal.py [--data DIR] [--hop-s 1] [--model features-typed]

Every 16 s window of every record (one per ``--hop-s``, as a bed streams it) is featurized by both engines of
``models.features.extract_batch``: ``reference`` (scipy ``find_peaks`` / ``peak_widths`` and numpy rhythm
statistics, row by row) and ``compiled`` (``models.beat_kernels``, the default). Reported per feature: windows
where the two differ, the largest relative difference; beat counts must be identical everywhere. Then the
registry's ``--model`` (the served routine and verdict model) scores both feature sets: the largest difference of
a published probability and the number of verdicts that flip. Writes bench/results/features_equal.json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data import list_records, load_record, resolve_data_dir, sliding_windows  # noqa: E402
from models.errors import RecordError  # noqa: E402
from models.features import COUNT_FEATURES, FEATURE_NAMES, extract_batch, warm_up  # noqa: E402
from models.tables import format_table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data")
    ap.add_argument("--hop-s", type=float, default=1.0)
    ap.add_argument("--model", default="features-typed", help="registry member that scores both feature sets")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "features_equal.json"))
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    threadpool_limits(1)
    warnings.simplefilter("ignore")
    data_dir = resolve_data_dir(args.data)
    infos = list_records(data_dir)
    ref_parts, comp_parts, types, skipped = [], [], [], []
    secs = {"reference": 0.0, "compiled": 0.0}
    warm_up()  # compile / load the kernels before anything is timed
    for info in tqdm(infos, desc="records", unit="rec"):
        try:
            rec = load_record(data_dir, info.name, info)
        except RecordError as e:
            skipped.append(str(e))
            continue
        W = np.stack([w for _, w in sliding_windows(rec, 16.0, args.hop_s)])
        M = np.broadcast_to(rec.mask, (len(W), len(rec.mask)))
        for e, parts in (("reference", ref_parts), ("compiled", comp_parts)):
            t = time.perf_counter()
            parts.append(extract_batch(W, M, engine=e))
            secs[e] += time.perf_counter() - t
        types += [rec.alarm_type] * len(W)
    ref, comp = np.concatenate(ref_parts), np.concatenate(comp_parts)
    nan_same = bool(np.array_equal(np.isnan(ref), np.isnan(comp)))
    same = (ref == comp) | (np.isnan(ref) & np.isnan(comp))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(same, 0.0, np.abs(comp - ref) / np.abs(ref))
    per_feature = [{"feature": n, "windows_differing": int((~same[:, j]).sum()), "max_rel_diff": float(rel[:, j].max())}
                   for j, n in enumerate(FEATURE_NAMES)]
    cols = [FEATURE_NAMES.index(n) for n in COUNT_FEATURES]
    counts_same = bool(np.array_equal(ref[:, cols], comp[:, cols], equal_nan=True))

    from models.registry import Registry

    member = Registry().load(args.model)
    p_ref = member.proba_from_features(ref, types)
    p_comp = member.proba_from_features(comp, types)
    thr = member.threshold_
    out = {
        "command": "bench/features_equal.py " + " ".join(sys.argv[1:]),
        "records": len(infos) - len(skipped), "skipped": skipped, "windows": len(ref), "hop_s": args.hop_s,
        "nan_pattern_identical": nan_same, "beat_counts_identical": counts_same,
        "windows_bit_identical": int(same.all(axis=1).sum()),
        "max_rel_diff": float(rel.max()),
        "features_differing": [r for r in per_feature if r["windows_differing"]],
        "seconds": {k: round(v, 1) for k, v in secs.items()},
        "ms_per_window": {k: round(v / len(ref) * 1e3, 4) for k, v in secs.items()},
        "model": {"name": args.model, "max_abs_prob_diff": float(np.abs(p_ref - p_comp).max()),
                  "verdicts_flipped": int(((p_ref >= thr) != (p_comp >= thr)).sum())},
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    _plot(per_feature, out, path.with_suffix(".png"))
    print(format_table(out["features_differing"] or [{"feature": "(none)", "windows_differing": 0, "max_rel_diff": 0.0}],
                       [("feature", "feature", ""), ("windows_differing", "windows differing", "d"), ("max_rel_diff", "max rel diff", ".1e")]))
    print(f"{out['windows']} windows of {out['records']} records: {out['windows_bit_identical']} bit-identical, largest relative "
          f"difference {out['max_rel_diff']:.1e}; NaN pattern identical: {nan_same}; beat counts identical: {counts_same}")
    print(f"{args.model}: largest probability difference {out['model']['max_abs_prob_diff']:.1e}, verdicts flipped "
          f"{out['model']['verdicts_flipped']}; ms per window (batched per record) {out['ms_per_window']}; wrote {path}")
    return 0 if nan_same and counts_same and out["max_rel_diff"] <= 1e-12 else 1


def _plot(per_feature, out, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    rel = np.array([max(r["max_rel_diff"], 1e-18) for r in per_feature])
    a1.semilogy(np.arange(len(rel)), rel, "o", ms=3)
    a1.axhline(1e-12, color="red", ls=":", lw=1, label="tolerance 1e-12")
    a1.axhline(2.2e-16, color="grey", ls=":", lw=1, label="1 ulp (2.2e-16)")
    a1.set_ylim(1e-18, 1e-10)
    a1.set_xlabel("feature (models.features.FEATURE_NAMES order; 1e-18 = identical)")
    a1.set_ylabel("largest relative difference")
    a1.set_title(f"compiled vs reference engine, {out['windows']} windows")
    a1.legend(fontsize=8)
    ms = out["ms_per_window"]
    a2.bar(list(ms), list(ms.values()), color=["grey", "tab:blue"])
    a2.set_ylabel("ms per window (batched per record)")
    a2.set_title(f"{ms['reference'] / ms['compiled']:.2f}x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
