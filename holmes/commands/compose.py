"""``holmes compose``: choose, for each latency budget, the most accurate ensemble of the zoo that fits it.

    holmes compose --budget-ms 50,100,250,500,1000 --beds 64
    holmes compose --budget-ms 250 --beds 64 --method exhaustive --latency-model bench/results/serve_profile.json
"""

from __future__ import annotations

import argparse
import json
import math


def _budgets(value: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budget-ms must be comma-separated numbers, got {value!r}") from None
    if not out or any(not (math.isfinite(b) and b > 0) for b in out):
        raise argparse.ArgumentTypeError(f"--budget-ms must be positive numbers, got {value!r}")
    return out


def register(sub) -> None:
    p = sub.add_parser("compose", help="choose ensembles under latency budgets (HOLMES composer)")
    p.add_argument("--budget-ms", type=_budgets, default=_budgets("50,100,250,500,1000"), help="comma-separated latency budgets (p99, ms)")
    p.add_argument("--beds", type=int, default=64, help="patients scored every second (the load)")
    p.add_argument("--rate-hz", type=float, default=1.0, help="windows per patient per second")
    p.add_argument("--max-request-windows", type=int, default=64, help="windows per request to the service")
    p.add_argument("--arrival", choices=("periodic", "poisson"), default="periodic", help="request arrivals")
    p.add_argument("--method", default="genetic", help="genetic, exhaustive, greedy_accuracy, greedy_latency, random")
    p.add_argument("--registry", help="registry folder (default: $HOLMES_REGISTRY or artifacts/registry)")
    p.add_argument("--version", help="registry version (default: LATEST)")
    p.add_argument("--members", help="comma-separated members to choose from (default: every member but stored ensembles)")
    p.add_argument("--latency-model", help="JSON of measured service-time parameters (bench/serve_profile.py writes one)")
    p.add_argument("--tail-factor", type=float, help="override the model's p99/p50 service-time ratio (measured on the service)")
    p.add_argument("--n-workers", type=float, help="override the model's effective parallel workers (cores left to the service)")
    p.add_argument("--out", default="artifacts/plan.json", help="where to save the plan (JSON)")
    p.set_defaults(func=run)


def run(args) -> int:
    from holmes.compose import ZooTable, compose
    from holmes.queueing import LatencyModel, Load
    from models.errors import InvalidFieldError

    table, reg = ZooTable.from_registry(args.registry, args.version)
    if args.members:
        table = table.subset([m.strip() for m in args.members.split(",") if m.strip()])
    else:
        table = table.subset([n for n, k in zip(table.names, table.kinds) if k != "ensemble"])
    model = LatencyModel()
    if args.latency_model:
        try:
            with open(args.latency_model) as f:
                model = LatencyModel.from_dict(json.load(f)["latency_model"])
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise InvalidFieldError("--latency-model", "must be a JSON file with a latency_model object", args.latency_model) from e
    over = {k: v for k, v in (("tail_factor", args.tail_factor), ("n_workers", args.n_workers)) if v is not None}
    for k, v in over.items():
        if not (math.isfinite(v) and v > 0):
            raise InvalidFieldError(f"--{k.replace('_', '-')}", "must be a finite number > 0", v)
    if over:
        model = LatencyModel.from_dict({**model.to_dict(), **over})
    load = Load(args.beds, args.rate_hz, args.max_request_windows, args.arrival)
    plan = compose(table, args.budget_ms, load, model, args.method, registry=reg)
    path = plan.save(args.out)
    print(f"zoo: {table.n_members} members from {reg['path']} {reg['version']}; load: {args.beds} beds x {args.rate_hz:g}/s, "
          f"{load.batch:g} windows/request, {args.arrival}")
    print("AUROC and score are nested (search and threshold chosen without the fold scored); 'selected on' is the chosen")
    print("subset scored on the predictions it was chosen on (optimistic)")
    print(f"{'budget ms':>9}  {'AUROC':>6}  {'score':>5}  {'selected on':>11}  {'p50 ms':>7}  {'p99 ms':>7}  {'evals':>6}  {'search s':>8}  members")
    for e in plan.ensembles:
        if not e.members:
            print(f"{e.budget_ms:9g}  nothing fits this budget at this load")
            continue
        print(f"{e.budget_ms:9g}  {e.auroc:6.3f}  {e.score:5.1f}  {e.score_in_sample:11.1f}  {e.p50_ms:7.1f}  {e.p99_ms:7.1f}  {e.n_evaluated:6d}  {e.search_s:8.2f}  {','.join(e.members)}")
    print(f"plan written to {path}")
    return 0
