"""Build the Ray Serve application: one ``MemberModel`` deployment per member the plan uses (one
``SupernetModel`` for all of its subnets), and the ``Ingress`` holding the plan and policy.

    serve run deploy/serve.yaml                   # or: serve run deploy.app:build_app plan_path=...
    holmes serve --plan artifacts/plan.json       # the same from the project CLI
"""

from __future__ import annotations

from typing import Mapping

from ray.serve import Application

from holmes.compose.plan import EnsembleSpec, Plan
from models.errors import InvalidFieldError

from .config import ServeConfig
from .ingress import Ingress
from .members import MemberModel
from .supernet import SupernetModel


def _deployment_name(member: str) -> str:
    return "member_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in member)


def default_plan(config: ServeConfig) -> Plan:
    """Without a plan: every member alone plus all of them, latency from the registry's profiles."""
    from models.registry import Registry

    reg = Registry(config.registry_dir)
    profiles = {p["name"]: p for p in (reg.profiles(config.registry_version) if config.registry_version else reg.profiles())}
    names = config.members or sorted(profiles)
    unknown = [n for n in names if n not in profiles]
    if unknown:
        raise InvalidFieldError("members", "must be members of the registry", unknown, sorted(profiles))
    specs = [EnsembleSpec(n, (n,), threshold=profiles[n].get("cv", {}).get("threshold", 0.5), auroc=profiles[n].get("cv", {}).get("auroc")) for n in names]
    if len(names) > 1:
        specs.append(EnsembleSpec("all", tuple(names)))
    return Plan(tuple(specs), {n: profiles[n]["latency_ms"] for n in names}, {}, {}, {"path": config.registry_dir},
                {n: profiles[n].get("kind", "features") for n in names})


def build(config: ServeConfig, plan: Plan, member_objects: Mapping | None = None) -> Application:
    """The application for ``plan``; members come from ``member_objects`` (name -> Member) or the registry."""
    handles = {}
    subnets = [n for n in plan.members if plan.kinds.get(n) == "subnet"]
    cpus = config.member_cpus(len(plan.members) - len(subnets) + (1 if subnets else 0))
    if subnets:  # every subnet of the plan is served by one supernet replica (one set of weights)
        if member_objects is not None and all(n in member_objects for n in subnets):
            source = [member_objects[n] for n in subnets]
        elif config.registry_dir:
            source = {"registry_dir": config.registry_dir, "registry_version": config.registry_version, "names": subnets}
        else:
            raise InvalidFieldError("registry_dir", "must be set to load the plan's subnets", None)
        handle = SupernetModel.options(name="supernet", ray_actor_options={"num_cpus": cpus}).bind(
            source, config.torch_threads, max(config.max_batch_size, 8), config.batch_wait_timeout_s)
        handles.update({n: handle for n in subnets})
    for name in plan.members:
        if name in subnets:
            continue
        if member_objects is not None and name in member_objects:
            source = member_objects[name]
        elif config.registry_dir:
            source = {"registry_dir": config.registry_dir, "registry_version": config.registry_version, "name": name}
        else:
            raise InvalidFieldError("registry_dir", f"must be set to load member {name!r}", None)
        handles[name] = MemberModel.options(
            name=_deployment_name(name), ray_actor_options={"num_cpus": cpus}
        ).bind(source, config.torch_threads, config.max_batch_size, config.batch_wait_timeout_s)
    return Ingress.options(ray_actor_options={"num_cpus": config.ingress_num_cpus}).bind(
        handles, plan.to_dict(), config.model_dump()
    )


def build_app(args: dict) -> Application:
    """Application builder for ``serve run`` / ``serve deploy`` (``import_path: deploy.app:build_app``)."""
    config = ServeConfig(**(args or {}))
    plan = Plan.load(config.plan_path) if config.plan_path else default_plan(config)
    return build(config, plan)
