"""``holmes evaluate``: challenge score, AUROC, TPR, TNR per model, overall and per alarm type.

    holmes evaluate --cv [--data DIR] [--models a,b] [--seeds 3] [--json PATH] [--oof PATH] [--plot PATH]
        nested, record-grouped cross-validation of the feature models on one folder
    holmes evaluate [--data OTHER_DIR] [--registry PATH] [--json PATH] [--plot PATH]
        scores the trained members of the registry (``holmes train``) on a folder, never fitting on it, and the
        verdict lane as served (row ``served-verdict``: plan row + incremental model + shift + definition gate, cut at 1/6)
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

COLUMNS = [
    ("name", "model", ""),
    ("n", "n", ".0f"),
    ("score", "score", ".2f"),
    ("score_std", "+/-", ".2f"),
    ("auroc", "AUROC", ".3f"),
    ("tpr", "TPR", ".3f"),
    ("tnr", "TNR", ".3f"),
    ("ece", "ECE", ".3f"),
    ("ece_calibrated", "ECE cal", ".3f"),
]


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score models on real records (cross-validation or a held-out folder)")
    p.add_argument("--data", help="CinC-2015-style folder (default: $HOLMES_DATA, cache, ../shared/data/cinc2015)")
    p.add_argument("--cv", action="store_true", help="nested cross-validation of the feature models on --data")
    p.add_argument("--models", help="comma-separated feature models for --cv (default: all)")
    p.add_argument("--seeds", type=int, default=3, help="repeats of 5-fold CV with different fold seeds (--cv)")
    p.add_argument("--registry", help="registry of trained members (held-out mode; default artifacts/registry)")
    p.add_argument("--json", help="write the figures as JSON here")
    p.add_argument("--oof", help="write per-record predictions (CSV) here")
    p.add_argument("--plot", help="write ROC curves (PNG) here")
    p.add_argument("--reliability", help="write reliability diagrams (PNG, one panel per model, raw and calibrated) here")
    p.add_argument("--per-type", action="store_true", help="also print the per-alarm-type table")
    p.set_defaults(func=run)


def run(args) -> int:
    from models.data import load_dataset, resolve_data_dir
    from models.errors import InvalidFieldError

    data_dir = resolve_data_dir(args.data)
    records, skipped = load_dataset(data_dir, progress=True)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    if args.seeds < 1:
        raise InvalidFieldError("--seeds", "must be >= 1", args.seeds)
    labelled = [r for r in records if r.label is not None]
    if args.cv:
        rows, probs, cal = _cv(args, labelled)
        mode = "cv"
    else:
        rows, probs, cal = _holdout(args, labelled)
        mode = "holdout"
    from models.tables import format_table

    print(f"\n{mode} on {data_dir} ({len(labelled)} labelled records, {len(skipped)} skipped)")
    print(format_table(rows, COLUMNS))
    if args.per_type:
        per = [{"name": f"{r['name']} / {t}", **v} for r in rows for t, v in r.get("per_type", {}).items()]
        print()
        print(format_table(per, [c for c in COLUMNS if c[0] != "score_std"]))
    out = {"mode": mode, "data": str(data_dir), "n_records": len(labelled), "skipped": [{"record": n, "reason": r} for n, r in skipped], "models": rows}
    if args.json:
        _write(args.json, json.dumps(out, indent=1, default=float))
    if args.oof:
        _write_oof(args.oof, labelled, probs)
    if args.plot:
        _plot_roc(args.plot, labelled, probs, rows)
    if args.reliability:
        from models.plots import reliability_diagrams

        y = [r.label for r in labelled]
        _write_png(args.reliability, reliability_diagrams, y, {n: (p[0], cal[n]) for n, p in probs.items() if n in cal}, title=f"{mode}: {data_dir.name}")
    return 0


def _cv(args, labelled):
    from models.evaluate import cross_validate
    from models.feature_models import DEFAULT_MODELS

    names = tuple(args.models.split(",")) if args.models else DEFAULT_MODELS
    results = cross_validate(labelled, names, seeds=tuple(range(args.seeds)), progress=True)
    rows = [r.row() for r in results]
    probs = {r.name: (r.oof_prob, r.oof_pred) for r in results}
    return rows, probs, {r.name: r.oof_calibrated for r in results}


def _holdout(args, labelled):
    from models.calibration import ece
    from models.metrics import summarize
    from models.registry import Registry
    from models.zoo_eval import oof_calibrators, predict_records

    reg = Registry(args.registry)
    version = reg.latest()
    profiles = {p["name"]: p for p in reg.profiles(version)}
    members = reg.load_all(version)
    probs = predict_records(members, labelled, progress=True)
    thresholds = {n: p["cv"]["threshold"] for n, p in profiles.items()}
    thresholds.update({n: e["cv"]["threshold"] for n, e in reg.ensembles(version).items()})
    trained_on = set()
    for p in profiles.values():
        trained_on |= set(p.get("oof", {}).get("records", []))
    overlap = len(trained_on & {r.name for r in labelled})
    if overlap:
        log.warning("%d of %d records were used to train registry %s: these figures are in-sample", overlap, len(labelled), version)
    y = np.array([r.label for r in labelled])
    at = [r.alarm_type for r in labelled]
    maps = oof_calibrators(list(profiles.values()))  # each row's map, fitted on the registry's OOF predictions
    rows, out_probs, cal = [], {}, {}
    for name, prob in probs.items():
        t = float(thresholds.get(name, 0.5))
        pred = prob >= t
        row = {"name": name, "threshold": t, "registry_version": version, "in_sample_records": overlap, **summarize(y, prob, pred, at),
               "ece": ece(y, prob)}
        if name in maps:
            cal[name] = maps[name].transform(prob)
            row.update(ece_calibrated=ece(y, cal[name]), calibration=maps[name].to_dict())
        rows.append(row)
        out_probs[name] = (prob, pred)
    for row, probs in _served_rows(args, labelled, y, at, version, overlap):
        rows.append(row)
        out_probs[row["name"]] = probs
    from unfold.heldout import cascade_row

    cascade = cascade_row(labelled)  # the fitted cascade ($HOLMES_CASCADE or artifacts/cascade), when there is one
    if cascade is not None:
        rows.append(cascade[0])
        out_probs["cascade"] = cascade[1]
    return rows, out_probs, cal


def _served_rows(args, labelled, y, at, version, overlap) -> list:
    """The verdict lane as served, cut at 1/6: ``served-verdict``, what it publishes (the bag, ``models.verdict_bag``,
    when ``stream.verdict_bag`` is on; else the single pipeline), and ``single-pipeline-verdict`` (the plan row, the
    incremental model on each record streamed from its start, the shift's map, the definition gate and the VT
    re-scorer: what the lane publishes when the bag fails). Rows whose artifacts are missing are left out."""
    from deploy.holmes_config import HolmesConfig
    from models.calibration import ece
    from models.metrics import summarize

    single = _single_row(args, labelled, y, at, version, overlap)
    cfg = HolmesConfig.load(None, {})
    if not cfg.stream.bag_on():
        return [] if single is None else [({**single[0], "name": "served-verdict"}, single[1])]
    from models.verdict_bag import CUT, NAME, load, served_probabilities

    try:
        bag = load(cfg.resolved(cfg.stream.verdict_bag_path) if cfg.stream.verdict_bag_path else None)
    except Exception as e:  # a checkout without the bag still scores the single pipeline
        log.warning("no bag row: %s", e)
        return [] if single is None else [single]
    prob, parts = served_probabilities(labelled, bag)
    pred = prob >= CUT
    fitted_on = set().union(*(m.record_names for m in bag.members))  # a record here that some member was fitted on
    row = {"name": "served-verdict", "threshold": CUT, "registry_version": version,
           "in_sample_records": sum(r.name in fitted_on for r in labelled),
           **summarize(y, prob, pred, at), "ece": ece(y, prob), "artifact": NAME, "members": len(bag.members),
           "member_k": [m.shift.k for m in bag.members], "gated_by_any_member": int(parts["gated"].any(0).sum()),
           "vt_rescored": int(parts["rescored"].any(0).sum())}
    return [(row, (prob, pred))] + ([] if single is None else [single])


def _single_row(args, labelled, y, at, version, overlap):
    """The single pipeline as the lane serves it (``models.verdict_shift.served_probabilities``: the plan row, the
    incremental model on each record streamed from its start, the shift's map, the definition gate and the VT
    re-scorer), cut at 1/6; None when the configured plan or shift is missing."""
    from deploy.holmes_config import HolmesConfig
    from holmes.compose.plan import Plan
    from models.calibration import ece
    from models.metrics import summarize
    from models.verdict_shift import CUT, NAME, load, served_probabilities

    cfg = HolmesConfig.load(None, {})
    try:
        plan = Plan.load(cfg.resolved(cfg.service.plan_path))
        shift = load(cfg.resolved(cfg.stream.verdict_shift_path) if cfg.stream.verdict_shift_path else None)
    except Exception as e:  # a checkout without the served artifacts still scores its members
        log.warning("no served-verdict row: %s", e)
        return None
    registry = args.registry or cfg.resolved(cfg.service.registry_dir)
    prob, gated = served_probabilities(labelled, shift, plan, registry, gate=cfg.stream.verdict_gate)
    pred = prob >= CUT
    row = {"name": "single-pipeline-verdict", "threshold": CUT, "registry_version": version, "in_sample_records": overlap,
           **summarize(y, prob, pred, at), "ece": ece(y, prob), "row": shift.row, "shift_k": shift.k, "shift_k_row": shift.k_row,
           "gate": shift.gate.limits() if shift.gate is not None and cfg.stream.verdict_gate else None,
           "second_gate": (shift.gate.then.limits() if shift.gate is not None and shift.gate.then is not None and cfg.stream.verdict_gate
                           else None), "gated": int(gated.sum()),
           "gated_true": int(y[gated].sum()), "artifact": NAME,
           "vt_rescorer": (shift.vt_rescorer.weights()
                           if shift.vt_rescorer is not None and shift.gate is not None and cfg.stream.verdict_gate else None)}
    return row, (prob, pred)


def _write(path, text):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    print(f"wrote {path}")


def _write_png(path, draw, *args, **kw):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    draw(path, *args, **kw)
    print(f"wrote {path}")


def _write_oof(path, records, probs):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record", "alarm_type", "label", "model", "prob", "verdict"])
        for name, (prob, pred) in probs.items():
            for r, p, d in zip(records, prob, pred):
                w.writerow([r.name, r.alarm_type, r.label, name, f"{p:.6f}", int(d)])
    print(f"wrote {path}")


def _plot_roc(path, records, probs, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.array([r.label for r in records]).astype(bool)
    by_name = {r["name"]: r for r in rows}
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (prob, pred) in probs.items():
        order = np.argsort(-prob)
        tpr = np.concatenate([[0], np.cumsum(y[order]) / max(1, y.sum())])
        fpr = np.concatenate([[0], np.cumsum(~y[order]) / max(1, (~y).sum())])
        r = by_name[name]
        ax.plot(fpr, tpr, label=f"{name} (AUROC {r['auroc']:.3f}, score {r['score']:.1f})", lw=1.2)
        tp, fp = (pred & y).sum() / max(1, y.sum()), (pred & ~y).sum() / max(1, (~y).sum())
        ax.plot([fp], [tp], "o", ms=4, color=ax.lines[-1].get_color())
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false alarms let through (1 - TNR)")
    ax.set_ylabel("true alarms kept (TPR)")
    ax.set_title("Alarm verdict ROC (dots: operating points)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
