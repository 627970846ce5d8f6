"""``holmes cascade fit`` and ``holmes cascade report``: the UnfoldML cascade on the real records.

    holmes cascade fit [--data DIR] [--registry PATH] [--ensemble cnn+features-ensemble] [--budget-ms 0.4] [--max-miss-rate 0.05]
    holmes cascade fit --plan deploy/plan.json [--ensemble floor|ROW] [--costs-from v0007 --ensemble-ms MS] ...
    holmes cascade report [--cascade DIR] [--version vNNNN] [--out-dir bench/results]

The costly rung is a registry ensemble row by default; with ``--plan`` it is a row of that serving plan
(``--ensemble floor``, the default then: the plan's most accurate row on nested CV, the one the service answers
alarms with; or a row's name), so the windows the cascade escalates are scored on the service by the very
ensemble its gates were tuned on (``unfold.scorer`` asks the service for that row by name).

``fit`` tunes the gates on out-of-fold predictions (record-grouped CV, the folds of every registry member),
under a bound on missed true alarms (``--max-miss-rate``: a cheap rung may answer ICK0 only through a cut-off whose
ICK0 answers hold at most that fraction of true alarms on the tuning data), scores the cascade at every budget of
the curve with nested CV, refits the rung models on every record and
saves a new version under artifacts/cascade (``holmes evaluate --data OTHER_DIR`` then scores it as the
row ``cascade``; ``holmes consume --scorer cascade`` serves it). ``report`` prints the curve and per-stage
table and writes cascade_curve.png and cascade_report.json.
"""

from __future__ import annotations

import json
from pathlib import Path


def _budget(value: str):
    if value.lower() in ("none", "inf"):
        return None
    import argparse

    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budget-ms must be a number of ms or 'none', got {value!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"--budget-ms must be > 0, got {value!r}")
    return v


DEFAULT_BUDGET_MS = 0.4  # unfold.fit.DEFAULT_BUDGET_MS (not imported here: the CLI starts without scikit-learn)
DEFAULT_MAX_MISS_RATE = "0.05"  # unfold.fit.DEFAULT_MAX_MISS_RATE


def _miss_rate(value: str):
    """--max-miss-rate: a number in [0, 1) or 'none'; anything else is a typed InvalidFieldError (field, rule, value)."""
    from models.errors import InvalidFieldError

    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidFieldError("--max-miss-rate", "must be a number in [0, 1) (a fraction of a rung's ICK0 answers) or 'none'",
                                value) from None
    from unfold.cascade import check_miss_rate

    return check_miss_rate("--max-miss-rate", v)


def register(sub) -> None:
    p = sub.add_parser("cascade", help="UnfoldML cascade: fit the staged gates, report budget vs score")
    csub = p.add_subparsers(dest="cascade_command", metavar="ACTION")
    csub.required = True
    f = csub.add_parser("fit", help="tune and fit the cascade on a data folder (nested CV figures included)")
    f.add_argument("--data", help="CinC-2015-style folder (default: $HOLMES_DATA, cache, ../shared/data/cinc2015)")
    f.add_argument("--registry", help="registry whose ensemble is the costly rung (default artifacts/registry)")
    f.add_argument("--version", help="registry version (default LATEST)")
    f.add_argument("--plan", metavar="PLAN_JSON",
                   help="take the costly rung from this serving plan (e.g. deploy/plan.json): the row --ensemble names")
    f.add_argument("--ensemble", default=None,
                   help="the costly rung: without --plan a registry ensemble row or 'all' (default cnn+features-ensemble); "
                        "with --plan 'floor' (default: the plan's most accurate row) or the name of a plan row")
    f.add_argument("--budget-ms", type=_budget, default=DEFAULT_BUDGET_MS,
                   help="per-stage compute budget of the served cascade (ms/window; 'none' for the most accurate gates)")
    f.add_argument("--feature-model", default="features-vote", help="multi-signal rung: features-gbm, features-vote, ...")
    f.add_argument("--max-miss-rate", default=DEFAULT_MAX_MISS_RATE, metavar="RATE",
                   help="bound on missed true alarms: a cheap rung may answer ICK0 only where at most this fraction of its ICK0 "
                        "answers are true alarms on the tuning data, in [0, 1) or 'none' (default %(default)s)")
    f.add_argument("--max-ick0", type=float, default=0.5, help="upper bound on ICK0 cut-offs")
    f.add_argument("--min-ick1", type=float, default=0.3, help="lower bound on ICK1 cut-offs")
    f.add_argument("--out", help="cascade folder (default: $HOLMES_CASCADE or artifacts/cascade)")
    f.add_argument("--costs-from", metavar="VERSION",
                   help="reuse the component costs measured for a fitted cascade of --out instead of timing them again: the "
                        "gates then depend on the data only, not on this machine's load (a reproducible refit); if that "
                        "cascade's costly rung is another ensemble, this one's is priced by --ensemble-ms or measured now")
    f.add_argument("--ensemble-ms", type=float, metavar="MS",
                   help="price of the costly rung in ms per window (e.g. the one bench/cascade_safe.py measured) instead of timing it")
    f.set_defaults(func=cmd_fit)
    r = csub.add_parser("report", help="budget-vs-score curve (PNG, table, JSON) of a fitted cascade")
    r.add_argument("--cascade", help="cascade folder (default: $HOLMES_CASCADE or artifacts/cascade)")
    r.add_argument("--version", help="cascade version (default LATEST)")
    r.add_argument("--out-dir", default="bench/results", help="where cascade_curve.png and cascade_report.json go")
    r.set_defaults(func=cmd_report)


def cmd_fit(args) -> int:
    from models.data import load_dataset, resolve_data_dir
    from models.errors import InvalidFieldError
    from unfold.fit import fit_cascade
    from unfold.persist import save

    for name in ("max_ick0", "min_ick1"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise InvalidFieldError(f"--{name.replace('_', '-')}", "must be in [0, 1]", v)
    max_miss_rate = _miss_rate(args.max_miss_rate)
    ens = costly_rung(args)  # before any record is read: a bad --plan / --ensemble fails at once
    if args.ensemble_ms is not None:
        from unfold.fit import ensemble_cost

        ensemble_cost(ens, ms=args.ensemble_ms)  # validates it
    costs, time_ensemble = None, False
    if args.costs_from:
        from unfold.persist import load

        prior = load(args.out, args.costs_from)
        costs = prior.cascade.costs
        print(f"component costs from cascade {args.costs_from} (not re-timed)")
        time_ensemble = (prior.ensemble.members, prior.ensemble.rule) != (ens.members, ens.rule) and args.ensemble_ms is None
        if time_ensemble:
            print(f"  its costly rung is {prior.ensemble.name}, not {ens.name}: {ens.name} is timed now (--ensemble-ms fixes its price)")
    data_dir = resolve_data_dir(args.data)
    records, skipped = load_dataset(data_dir, progress=True)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    ensemble_ms = args.ensemble_ms
    if time_ensemble:
        from unfold.fit import ensemble_cost, with_ensemble

        costs = with_ensemble(costs, ens, ensemble_cost(ens, [r for r in records if r.label is not None]))
    src = ens.source()
    print(f"costly rung: {'plan row ' + src['row'] + ' of ' + src['plan'] if ens.is_plan_row else 'registry ensemble ' + ens.name} "
          f"({len(ens.members)} members, rule {ens.rule}, registry {src['registry']}/{ens.version})")
    fitted, _ = fit_cascade(records, ens, args.budget_ms, feature_model=args.feature_model, max_ick0=args.max_ick0,
                            min_ick1=args.min_ick1, costs=costs, max_miss_rate=max_miss_rate, ensemble_ms=ensemble_ms)
    fitted.info["data"] = str(data_dir)
    path = save(fitted, args.out)
    _print(fitted.info)
    print(f"\nsaved {path} (fit in {fitted.info['fit_s']} s); `holmes cascade report` draws the curve")
    return 0


def costly_rung(args):
    """The cascade's costly rung from the fit's arguments: a plan row with ``--plan`` (``--ensemble`` 'floor' or a
    row name), else a registry ensemble row. A bad value is a typed ``InvalidFieldError`` naming the option."""
    from unfold.ensemble import EnsembleRef

    if getattr(args, "plan", None):
        return EnsembleRef.from_plan(args.plan, args.ensemble if args.ensemble is not None else "floor", args.registry, args.version)
    return EnsembleRef.from_registry(args.ensemble or "cnn+features-ensemble", args.registry, args.version)


def _print(info: dict) -> None:
    from models.tables import format_table
    from unfold.report import COLUMNS, STAGE_COLUMNS, curve_rows, stage_rows

    full = info["baselines"][-1]
    src = info.get("ensemble")  # absent before v0009: a registry ensemble row
    if src:
        print("\ncostly rung: " + (f"plan row {src['row']} of {src['plan']}" if src["kind"] == "plan_row" else f"registry ensemble {src['row']}")
              + f" (registry {src['registry']}/{src['version']})")
    print(f"\nfull ensemble on every window: {full['name']}  score {full['score']:.2f}  AUROC {full['auroc']:.3f}  "
          f"{full['mean_ms']:.3f} ms/window  {full['mean_macs']:.3g} MACs/window")
    if info.get("full_ensemble_ms_members_separately"):
        print(f"  (members shared one preprocessing and one feature extraction per batch; each member on its own: "
              f"{info['full_ensemble_ms_members_separately']:.3f} ms/window)")
    for b in info["baselines"][:-1]:
        print(f"rung alone on every window: {b['name']}  score {b['score']:.2f}  AUROC {b['auroc']:.3f}  {b['mean_ms']:.3f} ms/window")
    print("\nbudget vs score (nested CV, record-grouped folds, seed 0)")
    print(format_table(curve_rows(info), COLUMNS))
    cv = info["cv"]
    bound = info.get("max_miss_rate")
    print(f"\nserved cascade (budget {info['budget_ms']} ms/stage, miss bound {'none' if bound is None else bound}): score "
          f"{cv['score']:.2f}, missed true alarms {cv['fn']}, {cv['mean_ms']:.3f} ms/window "
          f"({cv['ms_reduction_x']:.1f}x less than the full ensemble), {cv['frac_reached_ensemble']:.3f} of windows reached it")
    print(format_table(stage_rows(cv), STAGE_COLUMNS))
    s2 = cv["stage2"]
    print(f"stage 2: {s2['entered']} of {s2['ventricular_windows']} ventricular windows entered; accuracy on true alarms "
          f"(ventricular or not) {s2['accuracy_on_true_alarms']:.3f}; true VT/VF confirmed {s2['true_ventricular_confirmed']:.3f}; "
          f"false VT/VF alarms rejected {s2['false_ventricular_rejected']:.3f}")


def cmd_report(args) -> int:
    from unfold.persist import load
    from unfold.report import plot

    fitted = load(args.cascade, args.version)
    info = fitted.info
    _print(info)
    out = Path(args.out_dir)
    png = plot(info, out / "cascade_curve.png")
    doc = {"cascade_version": fitted.version, "thresholds_": [[g.to_dict() for g in row] for row in fitted.cascade.thresholds_],
           "costs": fitted.cascade.costs.to_dict(), "ensemble": fitted.ensemble.to_dict(),
           **{k: v for k, v in info.items() if k not in ("records",)}}
    (out / "cascade_report.json").write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {png} and {out / 'cascade_report.json'}")
    return 0
