"""What ``models.fast_predict`` saves per call, and that it gives the same values: scikit-learn's ``predict_proba`` (its
forests already through ``models.fast_forest``) against ``fast_proba``, taking turns in one run, on real alarm-window
feature rows.

    .venv/bin/python bench/fast_predict.py [--data DIR] [--repeats 30]

Rows: each feature model of the committed registry (logreg, extratrees, vote, typed) at 1, 10 and 50 rows, and the
verdict bag's call (``VerdictBag.probabilities``: 5 members x 2 typed models, the gate and the VT re-scorer) at 1, 10 and
50 alarm windows of mixed types, with scikit-learn's path put back for the "before" side. Medians of ``--repeats``
calls each, after one warm-up call; the machine's ``bench/features_cost.py`` figure is printed beside them.

Writes bench/results/fast_predict.json (per row: median ms before and after, the ratio, and whether the values are
identical) and fast_predict.png.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _servebench import features_cost  # noqa: E402

from models import fast_predict  # noqa: E402
from models import verdict_bag as vb  # noqa: E402
from models.data import alarm_window, list_records, load_dataset, resolve_data_dir  # noqa: E402
from models.fast_forest import fast_forests  # noqa: E402
from models.feature_models import design_matrix  # noqa: E402
from models.features import extract_batch  # noqa: E402
from models.registry import Registry  # noqa: E402

SIZES = (1, 10, 50)


def _sklearn(est, X):
    with warnings.catch_warnings(), fast_forests(est):
        warnings.simplefilter("ignore")
        return est.predict_proba(X)


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _pair(before, after, repeats: int) -> dict:
    """Median ms of each, taking turns (before, after, before, ...) so a slow phase of the machine hits both."""
    tb, ta = [], []
    before(), after()
    for _ in range(repeats):
        tb.append(_ms(before))
        ta.append(_ms(after))
    b, a = float(np.median(tb)), float(np.median(ta))
    return {"before_ms": round(b, 3), "after_ms": round(a, 3), "ratio": round(b / a, 2)}


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fast_predict.json"))
    args = ap.parse_args()
    data = resolve_data_dir(args.data)
    names = [i.name for i in list_records(data)]
    pick = [n for t in "abtvf" for n in names if n.startswith(t)][::5][:60]  # every alarm type
    recs, _ = load_dataset(data, pick)
    W = np.stack([alarm_window(r) for r in recs])
    M = np.stack([r.mask for r in recs])
    T = [r.alarm_type for r in recs]
    F = extract_batch(W, M)
    X = design_matrix(F, T)
    rows, identical = [], True
    reg = Registry()
    for name in ("features-logreg", "features-extratrees", "features-vote", "features-typed"):
        est = reg.load(name).estimator_
        same = bool(np.array_equal(fast_predict.fast_proba(est, X), _sklearn(est, X)))
        identical &= same
        for n in SIZES:
            Z = X[:n]
            rows.append({"what": name, "rows": n, "identical": same,
                         **_pair(lambda: _sklearn(est, Z), lambda: fast_predict.fast_proba(est, Z), args.repeats)})
            print(f"{name:22s} {n:3d} rows  {rows[-1]['before_ms']:8.3f} -> {rows[-1]['after_ms']:7.3f} ms  x{rows[-1]['ratio']}")
    bag = vb.load()
    bag.warm()
    inc = [np.repeat(F[i][None], bag.max_k + 1, axis=0) for i in range(len(F))]
    orig = fast_predict.fast_proba
    for n in SIZES:
        idx = np.arange(n) % len(F)
        call = lambda: bag.probabilities(F[idx], [inc[i] for i in idx], [T[i] for i in idx], W[idx], M[idx])  # noqa: E731

        def before():  # the bag with scikit-learn's calls put back (its parts look fast_proba up on each call)
            fast_predict.fast_proba = _sklearn
            try:
                return call()
            finally:
                fast_predict.fast_proba = orig

        same = bool(np.array_equal(before()[0], call()[0]))
        identical &= same
        rows.append({"what": "verdict bag (5 pipelines)", "rows": n, "identical": same, **_pair(before, call, args.repeats)})
        print(f"{'verdict bag':22s} {n:3d} wins  {rows[-1]['before_ms']:8.3f} -> {rows[-1]['after_ms']:7.3f} ms  x{rows[-1]['ratio']}")
    cost = features_cost()  # the machine-speed figure (bench/features_cost.py, 2 repeats)
    out = {"command": "bench/fast_predict.py " + " ".join(sys.argv[1:]), "repeats": args.repeats, "records": len(recs),
           "alarm_types": sorted(set(T)), "all_identical": identical, "features_cost": cost, "rows": rows}
    path = Path(args.out)
    path.write_text(json.dumps(out, indent=1))
    _plot(rows, path.with_suffix(".png"))
    print(f"all identical: {identical}; features_cost {cost['rows'][0]['median_ms']:.2f} ms; wrote {path}")
    return 0


def _plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    what = list(dict.fromkeys(r["what"] for r in rows))
    fig, axes = plt.subplots(1, len(what), figsize=(3 * len(what), 3.4), sharey=False)
    for ax, w in zip(axes, what):
        rs = [r for r in rows if r["what"] == w]
        x = np.arange(len(rs))
        ax.bar(x - 0.2, [r["before_ms"] for r in rs], 0.4, label="scikit-learn")
        ax.bar(x + 0.2, [r["after_ms"] for r in rs], 0.4, label="fast_predict")
        ax.set_xticks(x, [str(r["rows"]) for r in rs])
        ax.set_title(w.replace("features-", ""), fontsize=9)
        ax.set_xlabel("rows / alarm windows")
    axes[0].set_ylabel("ms per call (median)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
