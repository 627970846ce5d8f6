"""``holmes compose``: choose, for each latency budget, the most accurate ensemble of the zoo that fits it.

    holmes compose --budget-ms 50,100,250,500,1000 --beds 64
    holmes compose --budget-ms 250 --beds 64 --method exhaustive --latency-model bench/results/serve_profile.json

Latency comes from the service: by default the profile measured on the running Ray Serve deployment
(``deploy/service_profile.json``, written by ``bench/serve_profile.py --profile-out``). A profile measured on
another registry version, or missing a member of the zoo, is refused (naming the file and what differs), never
used silently; ``--latency-model registry`` opts into the registry's in-process profiles explicitly.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "deploy" / "service_profile.json"


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
    p.add_argument("--latency-model", default=str(DEFAULT_PROFILE),
                   help="service profile JSON measured on the deployment (default deploy/service_profile.json), or "
                        "'registry' for the registry's in-process profiles")
    p.add_argument("--alarms-per-bed-hour", type=float, default=0.5,
                   help="monitor alarms per bed per hour: verdict requests (batch 1) added to the load (default 0.5)")
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
    if args.latency_model != "registry":
        model = service_latency_model(args.latency_model, reg, table.names)
    if not (math.isfinite(args.alarms_per_bed_hour) and args.alarms_per_bed_hour >= 0):
        raise InvalidFieldError("--alarms-per-bed-hour", "must be a finite number >= 0", args.alarms_per_bed_hour)
    over = {k: v for k, v in (("tail_factor", args.tail_factor), ("n_workers", args.n_workers)) if v is not None}
    for k, v in over.items():
        if not (math.isfinite(v) and v > 0):
            raise InvalidFieldError(f"--{k.replace('_', '-')}", "must be a finite number > 0", v)
    if over:
        model = LatencyModel.from_dict({**model.to_dict(), **over})
    # verdicts are requests of their own (batch 1): at a ward's alarm rate they add requests, not windows, to the load
    verdict_rate_hz = args.beds * args.alarms_per_bed_hour / 3600.0
    load = Load(args.beds, args.rate_hz + verdict_rate_hz / max(args.beds, 1), args.max_request_windows, args.arrival)
    plan = compose(table, args.budget_ms, load, model, args.method, registry=reg)
    plan.load["alarms_per_bed_hour"] = args.alarms_per_bed_hour
    plan.load["latency_from"] = args.latency_model
    plan.save(args.out)
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


def service_latency_model(path, reg: dict, members):
    """The latency model of a service profile, refused when stale: measured on another registry version, missing a
    member of the zoo, or not measured on the deployment."""
    from holmes.queueing import LatencyModel
    from models.errors import InvalidFieldError

    path = Path(path)
    if not path.is_file():
        raise InvalidFieldError("--latency-model", "must be a service profile measured on the deployment (run "
                                "`bench/serve_profile.py --profile-out FILE` against it), or 'registry'", str(path))
    try:
        d = json.loads(path.read_text())
        lm = d["latency_model"]
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise InvalidFieldError("--latency-model", "must be a JSON file with a latency_model object", str(path)) from e
    if d.get("measured_on") != "ray-serve deployment":
        raise InvalidFieldError(str(path), "must be measured on the running deployment (measured_on: ray-serve deployment)",
                                d.get("measured_on"))
    measured = (d.get("registry") or {}).get("version")
    if measured != reg.get("version"):
        raise InvalidFieldError(str(path), f"is stale: measured on registry {measured}, the zoo is {reg.get('version')}; "
                                "re-measure with bench/serve_profile.py --profile-out", measured)
    missing = sorted(set(members) - set(lm.get("member_ms", {})))
    if missing:
        raise InvalidFieldError(str(path), "is stale: it has no service time for members of the zoo (re-measure)", missing)
    return LatencyModel.from_dict(lm)
