"""The harness of the benches that try one more gate reading after the served definition gate
(``bench/width_gate.py``, ``pulse_gate.py``, ``confirmed_gate.py``, ``onset_gate.py``).

Each bench computes its reading per record, then ``run`` does the rest on the same nested, record-grouped folds as
``bench/definition_gates.py``: per outer fold the served procedure (``served_folds``), the served gate fitted on the
inner out-of-fold probabilities and applied, then the second gate (``models.definition_gate.fit`` with the bench's own
definition) fitted on the inner probabilities after the served gate and applied after it; the JSON, the paired
differences' picture (or the bench's own) and the table on stdout follow.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from definition_gates import Bench, gated_folds, load_bench, results_path
from feature_sets import _row, paired_bars, print_rules, summarize_rules
from models import definition_gate as dg

SERVED_GATE = "served + definition gate (rate / pause)"
VT = "Ventricular_Tachycardia"  # the alarm type the gate benches read


def cached_readings(b: Bench, stem: str, columns: int, alarm_type: str, read, what: str) -> np.ndarray:
    """[records, columns] readings of the ``alarm_type`` records (NaN elsewhere): ``read(indices)`` gives them [m, columns];
    kept in ~/.cache/holmes-icu/<stem>_<records>.npy and read from there while it is."""
    import time

    from verdict_ideas import cache_path

    path = cache_path(b.n).with_name(f"{stem}_{b.n}.npy")
    if path.is_file():
        return np.load(path)
    t0 = time.perf_counter()
    R = np.full((b.n, columns), np.nan)
    idx = np.flatnonzero(b.T == alarm_type)
    R[idx] = read(idx)
    np.save(path, R)
    print(f"{what} of {len(idx)} records in {time.perf_counter() - t0:.0f} s (kept in {path})", flush=True)
    return R


def args_and_bench(doc: str, stem: str, more=None) -> tuple[argparse.Namespace, Path, Bench]:
    """The benches' common options (--data, --seeds, --first-seed, --out; ``more(parser)`` adds a bench's own), where the
    results go, and the ``Bench``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="records folder (default: the shared development data)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    if more:
        more(ap)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    return args, results_path(stem, args.out, args.seeds, args.first_seed), load_bench(args.data, args.seeds, args.first_seed)


def reading_main(doc: str, script: str, read, rule: str, definition: dg.Reading, title: str, key: str,
                 margins=dg.MARGINS, under: float | None = None) -> int:
    """The whole of a gate bench whose only figures beyond ``run``'s are ``reading_figures``: options, the reading
    ``read(bench)``, the nested run, the JSON and picture."""
    _, out_path, b = args_and_bench(doc, script.removesuffix(".py"))
    reading = read(b)
    out = run(b, rule, VT, reading, definition, margins)
    write(script, out, reading_figures(out, reading, b.T == VT, b.y, key, under=under), out_path, title)
    return 0


def row_max(M: np.ndarray) -> np.ndarray:
    """Row-wise max ignoring NaN (e.g. over the two ECG leads); NaN where the whole row is."""
    return np.where(np.isfinite(M).any(1), np.nanmax(np.where(np.isfinite(M), M, -np.inf), axis=1), np.nan)


def run(b: Bench, rule: str, typ: str, reading: np.ndarray, definition: dg.Reading, margins=dg.MARGINS) -> dict:
    """The served gate, then a gate for alarm type ``typ`` on ``reading`` (NaN: never gated) with limits from
    ``definition`` and ``margins``, both chosen on inner folds. Returns the figures every such bench writes: per rule
    and fold seed (``per_seed``), the paired summary against the served gate, what the second gate did on each outer
    fold, and the served gate's outer probabilities averaged over fold seeds (``served_mean``, for a picture)."""
    T, y = b.T, b.y
    table = {typ: definition}
    per_seed: dict[str, list] = {}
    per_fold = []
    served = np.zeros((len(b.seeds), b.n))
    for si, s in enumerate(b.seeds):
        probs = {SERVED_GATE: np.zeros(b.n), rule: np.zeros(b.n)}
        for k, tr, te, p_inner_g, p_te_g in gated_folds(b, s):
            second = dg.fit(p_inner_g, y[tr], T[tr], reading[tr], margins, table=table)
            probs[SERVED_GATE][te] = p_te_g
            probs[rule][te], g = second.apply(p_te_g, reading[te], T[te])
            flip = g & (p_te_g >= dg.CUT)
            per_fold.append({"seed": s, "fold": k, "margin": second.margins.get(typ), "limit": second.limits().get(typ),
                             "cap": second.caps.get(typ), "gated_inner": second.fit_counts.get(typ), "gated_outer": int(g.sum()),
                             "gated_outer_true": int(y[te][g].sum()), "flipped_outer": int(flip.sum()),
                             "flipped_outer_true": int((flip & (y[te] == 1)).sum())})
        served[si] = probs[SERVED_GATE]
        for name, p in probs.items():
            per_seed.setdefault(name, []).append(_row(y, p, T))
    return {"fold_seeds": len(b.seeds), "first_seed": b.seeds[0], "records": b.n, "fold_predictions": b.path.name,
            "summary": summarize_rules(per_seed, SERVED_GATE, "minus_served"),  # "served" here: the served gate
            "margins_chosen": dict(Counter(str(c["margin"]) for c in per_fold)),
            "gated_outer": {key: sum(c[field] for c in per_fold) for key, field in (
                ("windows", "gated_outer"), ("true", "gated_outer_true"), ("flipped", "flipped_outer"), ("flipped_true", "flipped_outer_true"))},
            "per_fold": per_fold, "per_seed": per_seed, "served_mean": served.mean(0)}


def reading_figures(out: dict, reading: np.ndarray, rows: np.ndarray, y: np.ndarray, name: str, under: float | None = None) -> dict:
    """What a VT gate bench adds to its JSON about its reading on the alarm rows ``rows``: its quantiles over true and
    false alarms (``vt_<name>_quantiles``), how many read under ``under`` (when given), how many have no reading, and the
    limits the inner folds chose (``out``: ``run``'s result)."""
    labels = (("true", 1), ("false", 0))
    figs = {f"vt_{name}_quantiles": {lab: np.round(np.nanpercentile(reading[rows & (y == v)], [5, 25, 50, 75, 95]), 2).tolist()
                                     for lab, v in labels}}
    if under is not None:
        figs[f"vt_{name}_under_{under:g}"] = {lab: int((rows & (y == v) & (reading < under)).sum()) for lab, v in labels}
    figs["vt_no_reading"] = {lab: int((rows & (y == v) & ~np.isfinite(reading)).sum()) for lab, v in labels}
    figs["limits_chosen"] = dict(Counter(str(None if c["limit"] is None else round(c["limit"], 3)) for c in out["per_fold"]))
    return figs


def write(script: str, out: dict, extra: dict, out_path: Path, title: str, plot=None) -> None:
    """The bench's JSON (``out`` and its own ``extra`` figures), its picture (``plot(out, path)``, or the paired
    differences under ``title``) and the table on stdout."""
    served_mean = out.pop("served_mean", None)
    doc = {"command": f"bench/{script} " + " ".join(sys.argv[1:]), **{k: out[k] for k in ("records", "fold_seeds", "first_seed")},
           **extra, **{k: v for k, v in out.items() if k not in ("records", "fold_seeds", "first_seed")}}
    out_path.write_text(json.dumps(doc, indent=1))
    if plot is not None:
        plot(doc, served_mean, out_path.with_suffix(".png"))
    else:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 2.8))
        paired_bars(ax, doc["summary"], doc["fold_seeds"])
        ax.set_title(f"{title} (fold seeds {doc['first_seed']}..{doc['first_seed'] + doc['fold_seeds'] - 1})")
        fig.tight_layout()
        fig.savefig(out_path.with_suffix(".png"), dpi=110)
        plt.close(fig)
    print_rules(doc["summary"], 62)
    print("; ".join(f"{k} {v}" for k, v in extra.items() if not isinstance(v, str)))
    if doc.get("margins_chosen"):
        print(f"margins chosen per outer fold {doc['margins_chosen']}; outer {doc['gated_outer']}")
    print(f"wrote {out_path}")
