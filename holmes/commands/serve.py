"""``holmes serve``: start the Ray Serve application (ingress + one deployment per member of the plan).

    holmes serve --plan artifacts/plan.json              # HTTP on 127.0.0.1:8000, Ctrl-C stops
    holmes serve --registry artifacts/registry           # no plan: every member alone plus all together
    serve run deploy/serve.yaml                          # the same through Ray's own CLI
"""

from __future__ import annotations

import os
import signal
import threading


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the HOLMES ensemble service on Ray Serve")
    p.add_argument("--plan", help="plan JSON from `holmes compose` (default: artifacts/plan.json when it exists)")
    p.add_argument("--registry", help="registry folder (default: $HOLMES_REGISTRY or artifacts/registry)")
    p.add_argument("--version", help="registry version (default: LATEST)")
    p.add_argument("--members", help="comma-separated members to deploy when there is no plan")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--app-name", default="holmes", help="Serve application name (the stream scorer's --app-name)")
    p.add_argument("--ray-address", help="join a running Ray cluster (default: start a local one)")
    p.add_argument("--num-cpus", type=float, default=2, help="CPUs of the local Ray instance")
    p.set_defaults(func=run)


def run(args) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from deploy.app import build, default_plan
    from deploy.config import ServeConfig
    from holmes.compose.plan import Plan
    from models.registry import default_registry_path

    plan_path = args.plan or ("artifacts/plan.json" if os.path.isfile("artifacts/plan.json") else None)
    registry = args.registry or str(default_registry_path())
    config = ServeConfig(registry_dir=registry, registry_version=args.version, plan_path=plan_path,
                         members=[m for m in args.members.split(",") if m] if args.members else None)
    plan = Plan.load(plan_path) if plan_path else default_plan(config)
    if args.ray_address:
        ray.init(address=args.ray_address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, object_store_memory=256 * 1024**2,
                 runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(build(config, plan), name=args.app_name, route_prefix="/")
    from deploy.scorer import write_service_file

    write_service_file(ray.get_runtime_context().gcs_address, args.app_name, f"http://{args.host}:{args.port}")
    print(f"HOLMES service '{args.app_name}' on http://{args.host}:{args.port}  (members: {', '.join(plan.members)})")
    print("  POST /v1/score   GET /v1/ensembles   GET /healthz   Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    serve.shutdown()
    ray.shutdown()
    return 0
