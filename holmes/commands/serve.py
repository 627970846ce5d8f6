"""``holmes serve``: the whole service. The Ray Serve application (ingress + one deployment per member of the
plan), the Kafka side (the embedded broker unless a cluster is given) and the stream consumer: routine
windows scored in process by features-typed-inc on per-patient incremental features, each sample filtered once
(``stream.routine_scorer: incremental``, the default: 2,000 beds on 2 cores); ``features``: the best registry feature
model on each whole window (features-typed, the member the plan's floor row holds); ``cascade``: cheap rungs
escalating to the service),
alarm windows through the verdict lane (the service, ahead of routine work, never below the floor).

    holmes serve --routine-scorer features                                # routine windows featurized whole (stop 23's default)
    holmes serve --plan deploy/plan_v0002.json --routine-scorer cascade   # the served setting before that (cascade v0009)

    holmes serve                                          # deploy/holmes.yaml; prints the bootstrap address, then "ready"
    holmes serve --bootstrap-servers kafka:9092 --plan artifacts/plan.json
    holmes serve --service-only                           # only the Ray Serve application (HTTP + handles)
    holmes replay --bootstrap-servers <address> --beds 300 --speed 1 --stagger-s 60     # feed it, from another shell

Ctrl-C or SIGTERM stops it all: the consumer publishes and commits what it scored, then Serve, Ray and the
embedded broker stop.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from models.errors import InvalidFieldError

from .consumers import ExtraConsumers

log = logging.getLogger("holmes.serve")


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the whole service: Ray Serve ensembles, Kafka consumer, routine scorer, verdict lane")
    p.add_argument("--config", help="service YAML (default deploy/holmes.yaml)")
    p.add_argument("--plan", help="plan JSON from `holmes compose` (overrides service.plan_path)")
    p.add_argument("--registry", help="registry folder (overrides service.registry_dir)")
    p.add_argument("--version", help="registry version (default: LATEST)")
    p.add_argument("--host", help="HTTP host (overrides http.host)")
    p.add_argument("--port", type=int, help="HTTP port (overrides http.port)")
    p.add_argument("--app-name", help="Serve application name")
    p.add_argument("--ray-address", help="join a running Ray cluster (default: start a local one)")
    p.add_argument("--num-cpus", type=float, help="CPUs of the local Ray instance")
    p.add_argument("--bootstrap-servers", help="Kafka cluster (default: start the embedded broker)")
    p.add_argument("--topic-prefix", help="namespace the icu.* topics")
    p.add_argument("--routine-scorer", choices=("cascade", "serve", "features", "incremental"),
                   help="what scores routine windows (incremental: per-patient state, models.incremental)")
    p.add_argument("--cascade", help="fitted cascades folder (overrides stream.cascade_dir)")
    p.add_argument("--cascade-version", help="cascade version, e.g. v0008 (overrides stream.cascade_version; default LATEST)")
    p.add_argument("--verdict-floor", help="weakest plan row a verdict may get ('auto': the most accurate on nested CV)")
    p.add_argument("--verdict-deadline-ms", type=float, help="verdict due this long after the alarm's sample time")
    p.add_argument("--routine-hold-ms", type=float, help="routine windows wait for company up to this long (overrides stream.routine_hold_ms)")
    p.add_argument("--score-workers", type=int, help="processes scoring routine batches with --routine-scorer features (overrides stream.score_workers)")
    p.add_argument("--duration-s", type=float, help="stop after this many seconds (default: until Ctrl-C / SIGTERM)")
    p.add_argument("--metrics-json", help="write the consumer's final metrics here")
    p.add_argument("--consumers", type=int, help="consumer processes in the group (overrides stream.consumers; this one included): "
                                                 "each owns a share of the partitions, so of the patients")
    p.add_argument("--fetch-min-bytes", type=int, help="a consumer's fetch waits (up to 50 ms) for this many bytes (overrides stream.fetch_min_bytes)")
    p.add_argument("--verdict-blend", choices=("on", "off"), help="verdicts: mean of the plan row and features-typed-inc on the "
                   "patient's streamed state (overrides stream.verdict_blend; default on with --routine-scorer incremental)")
    p.add_argument("--verdict-shift", choices=("on", "off"), help="blended verdicts averaged over the windows 1..K s before "
                   "the alarm too, through the fitted map (overrides stream.verdict_shift; default on)")
    p.add_argument("--verdict-bag", choices=("on", "off"), help="the verdict is the mean of the bag's 5 pipelines, each fitted on "
                   "80 %% of the records (overrides stream.verdict_bag; default on; the single pipeline answers when it fails)")
    p.add_argument("--verdict-gate", choices=("on", "off"), help="shifted verdicts capped below the cut where the alarm window "
                   "misses its alarm's definition by the fitted margin (overrides stream.verdict_gate; default on)")
    p.add_argument("--consumer-only", action="store_true",
                   help="no service, no broker: join a running one (--ray-address, --bootstrap-servers) as one more consumer of its group")
    p.add_argument("--service-only", action="store_true", help="run only the Ray Serve application, no Kafka side")
    p.set_defaults(func=run)


def load_config(args):
    from deploy.holmes_config import HolmesConfig

    over = {"service.plan_path": args.plan, "service.registry_dir": args.registry, "service.registry_version": args.version,
            "http.host": args.host, "http.port": args.port, "app_name": args.app_name, "ray.address": args.ray_address,
            "ray.num_cpus": args.num_cpus, "kafka.bootstrap_servers": args.bootstrap_servers,
            "kafka.topic_prefix": args.topic_prefix, "stream.routine_scorer": args.routine_scorer,
            "stream.cascade_dir": args.cascade, "stream.cascade_version": args.cascade_version,
            "service.verdict_floor": args.verdict_floor, "stream.verdict_deadline_ms": args.verdict_deadline_ms,
            "stream.routine_hold_ms": args.routine_hold_ms, "stream.score_workers": args.score_workers,
            "stream.consumers": args.consumers, "stream.fetch_min_bytes": args.fetch_min_bytes,
            "stream.verdict_blend": None if args.verdict_blend is None else args.verdict_blend == "on",
            "stream.verdict_shift": None if args.verdict_shift is None else args.verdict_shift == "on",
            "stream.verdict_gate": None if args.verdict_gate is None else args.verdict_gate == "on",
            "stream.verdict_bag": None if args.verdict_bag is None else args.verdict_bag == "on"}
    return HolmesConfig.load(args.config, over)


def start_service(cfg):
    """Ray (local or joined), the application for the configured plan; returns (handle, plan, ray address)."""
    from deploy import runtime
    from deploy.app import default_plan
    from holmes.compose.plan import Plan

    service = cfg.service.model_copy(update={"registry_dir": cfg.resolved(cfg.service.registry_dir),
                                             "plan_path": cfg.resolved(cfg.service.plan_path)})
    plan = Plan.load(service.plan_path) if service.plan_path else default_plan(service)
    if cfg.ray.address:
        ray, _ = runtime.join(cfg.ray.address)
    else:
        ray, _ = runtime.start_local(cfg.ray.num_cpus, cfg.http.host, cfg.http.port)
    handle = runtime.run_app(service, plan, cfg.app_name, route_prefix="/" if cfg.http.port else None)
    runtime.warm_up(handle, plan, cfg.stream.window_s)
    address = ray.get_runtime_context().gcs_address
    runtime.write_service_file(address, cfg.app_name, f"http://{cfg.http.host}:{cfg.http.port}")
    return handle, plan, address


def check_stream(cfg):
    """The stream settings that depend on each other, checked before anything starts; returns ``cfg``."""
    s = cfg.stream
    if s.score_workers != 1 and s.routine_scorer != "features":
        raise InvalidFieldError("stream.score_workers", f"applies to routine_scorer features, not {s.routine_scorer!r}: must be 1",
                                s.score_workers)
    if s.verdict_blend and s.routine_scorer != "incremental":
        raise InvalidFieldError("stream.verdict_blend", "needs routine_scorer incremental (it holds the patients' streamed state)",
                                f"true with routine_scorer {s.routine_scorer}")
    if s.verdict_bag:
        off = [k for k in ("verdict_shift", "verdict_gate") if not getattr(s, k)] + (["verdict_blend"] if s.verdict_blend is False else [])
        if off or s.window_s != 16.0 or s.hop_s != 1.0:
            raise InvalidFieldError("stream.verdict_bag", "needs verdict_blend, verdict_shift and verdict_gate on and 16 s windows "
                                    "1 s apart (each member is that procedure, fitted so)",
                                    f"true with {', '.join(k + ' off' for k in off) or f'window_s {s.window_s:g}, hop_s {s.hop_s:g}'}")
    return cfg



def stream_scorers(cfg, handle, plan=None):
    """(routine scorer, verdict scorer) of the consumer, both backed by the running application ``handle``. The
    cascade's escalations ask for the plan's floor row by name (the most accurate row served), not whatever the
    routine policy would pick."""
    from deploy.scorer import ServeScorer

    s = check_stream(cfg).stream
    per_request = cfg.service.max_request_windows  # the largest request the ingress takes: fewer calls, each costing the same
    verdicts = ServeScorer(handle=handle, app_name=cfg.app_name, deadline_ms=s.verdict_deadline_ms, lane="verdict",
                           max_request_windows=per_request)
    if s.routine_scorer == "serve":
        return ServeScorer(handle=handle, app_name=cfg.app_name, deadline_ms=s.deadline_ms, max_request_windows=per_request), verdicts
    if s.routine_scorer == "incremental":
        import streams.incremental_scorer  # noqa: F401  (registers "incremental")
        from streams.verdict_blend import VerdictBlend
        from streams.scorer import make_scorer

        routine = make_scorer("incremental", model_dir=cfg.resolved(s.incremental_dir) if s.incremental_dir else None,
                              window_s=s.window_s, hop_s=s.hop_s)
        if s.verdict_blend is False:
            return routine, verdicts
        shift = None
        if s.verdict_shift:
            from models.verdict_shift import load as load_shift

            shift = load_shift(cfg.resolved(s.verdict_shift_path))
            floor = None if plan is None else plan.floor().name
            if plan is not None and shift.row is not None and shift.row != floor:
                log.warning("verdict shift: fitted on plan row %r, the served floor row is %r; its map may be off", shift.row, floor)
        gate = shift.gate if shift is not None and s.verdict_gate else None
        bag = None
        if s.bag_on() and shift is not None and gate is not None:
            from models.verdict_bag import load as load_bag

            bag = load_bag(cfg.resolved(s.verdict_bag_path) if s.verdict_bag_path else None)
        return routine, VerdictBlend(verdicts, routine, shift=shift, gate=gate, bag=bag)
    if s.routine_scorer == "features":
        import streams.feature_scorer  # noqa: F401  (registers "features")
        from streams.scorer import make_scorer

        return make_scorer("features", registry=cfg.resolved(cfg.service.registry_dir), workers=s.score_workers), verdicts
    from unfold.scorer import cascade_factory

    # the costly rung reads the combined probability uncalibrated (its gates were tuned on it)
    costly = ServeScorer(handle=handle, app_name=cfg.app_name, deadline_ms=s.deadline_ms, raw=True,
                         ensemble=None if plan is None else plan.floor().name, max_request_windows=per_request)
    scorer = cascade_factory(cascade=cfg.resolved(s.cascade_dir), version=s.cascade_version, costly=costly, verdicts=verdicts)
    check_cascade_row(scorer.fitted, plan)
    return scorer, verdicts


def check_cascade_row(fitted, plan) -> None:
    """A cascade whose costly rung is a plan row asks the service for that row by name, so the served plan's row of that
    name must hold the members its gates were tuned on; otherwise a typed error before any window is scored."""
    from unfold.scorer import plan_row

    row = plan_row(fitted)
    if plan is None or row is None:
        return
    served = {e.name: e for e in plan.ensembles}
    tuned = sorted(fitted.ensemble.members)
    if row not in served or sorted(served[row].members) != tuned:
        got = f"row {row!r} of the served plan = {sorted(served[row].members) if row in served else 'absent'}"
        raise InvalidFieldError(
            "stream.cascade_version",
            f"must be a cascade fitted on the served plan's row {row!r} (its gates were tuned on {tuned}): serve the plan "
            "it was fitted on (--plan), refit it (holmes cascade fit --plan PLAN --ensemble floor), or use --routine-scorer features",
            got)


def _announce_ready(pipeline, own: threading.Event, extra, stop: threading.Event, on_signal) -> None:
    """Print the ready line once this consumer and every extra one own partitions (the group has settled, so a replay
    started now loses no window to a rebalance); stop everything if an extra consumer ends first (from then on, one that
    ends is restarted: ``ExtraConsumers.supervise``)."""
    while not stop.is_set():
        if extra is not None and extra.failed():
            print(f"[serve] an extra consumer ended before it was ready (exit codes {extra.failed()}): stopping", flush=True)
            on_signal()
            return
        if own.is_set() and (extra is None or extra.ready()):
            n = 1 + (len(extra.procs) if extra is not None else 0)
            print(f"[serve] ready: consuming {pipeline.topics.waveforms} and {pipeline.topics.alarms} with {n} consumer"
                  f"{'s' if n > 1 else ''}, publishing to {pipeline.topics.risk} (Ctrl-C stops)", flush=True)
            if extra is not None:
                extra.supervise()
            return
        stop.wait(0.2)


def _write_metrics(path: str | None, metrics: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(metrics, f, indent=2, default=str)


def _kafka_settings(cfg):
    """The configured cluster's settings (None: the embedded broker); the same options as ``holmes consume``."""
    from holmes.commands.stream import kafka_settings

    return kafka_settings(cfg.kafka) if cfg.kafka.bootstrap_servers else None


def build_pipeline(cfg, routine, verdicts, settings):
    """The stream consumer of ``holmes serve`` (and of each extra consumer process) with the configured window, lanes
    and risk hysteresis; ``settings`` None: the embedded broker."""
    from streams.broker import Topics
    from streams.consumer import ConsumerConfig
    from streams.hysteresis import HysteresisConfig
    from streams.pipeline import StreamPipeline
    from streams.windows import WindowConfig

    s = cfg.stream
    return StreamPipeline(routine, settings, Topics.with_prefix(cfg.kafka.topic_prefix), WindowConfig(window_s=s.window_s, hop_s=s.hop_s),
                          ConsumerConfig(group_id=s.group_id, deadline_ms=s.deadline_ms, max_batch=s.max_batch,
                                         routine_hold_s=s.routine_hold_ms / 1e3, verdict_deadline_ms=s.verdict_deadline_ms,
                                         fetch_min_bytes=s.fetch_min_bytes, max_pending=s.max_pending,
                                         hysteresis=HysteresisConfig(s.risk.raise_at, s.risk.clear_below, s.risk.hold_s)),
                          verdicts=verdicts)


def run_consumer_only(args, cfg) -> int:
    """One more consumer of a running service's group: its Ray application for verdicts (and the cascade's escalations),
    its Kafka cluster; the routine scorer in this process. Stops on SIGTERM / Ctrl-C after publishing and committing."""
    from deploy import runtime
    from holmes.compose.plan import Plan

    if not cfg.ray.address or not cfg.kafka.bootstrap_servers:
        raise InvalidFieldError("--consumer-only", "needs the running service's --ray-address and --bootstrap-servers",
                                {"ray.address": cfg.ray.address, "kafka.bootstrap_servers": cfg.kafka.bootstrap_servers})
    handle = runtime.connect_service(cfg.app_name, cfg.ray.address)
    plan = Plan.load(cfg.resolved(cfg.service.plan_path)) if cfg.service.plan_path else None
    routine, verdicts = stream_scorers(cfg, handle, plan)
    pipeline = build_pipeline(cfg, routine, verdicts, _kafka_settings(cfg))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: pipeline.request_stop())
    try:
        pipeline.start()
        print(f"[serve] consumer of group {cfg.stream.group_id} at {cfg.kafka.bootstrap_servers}; routine windows: {routine.name}; "
              f"verdicts: {verdicts.name}", flush=True)
        pipeline.on_ready(lambda p: print("[serve] ready: consuming its share of the partitions", flush=True))
        metrics = pipeline.run(timeout_s=args.duration_s)
        _write_metrics(args.metrics_json, metrics)
        return 0
    finally:
        pipeline.close()
        if hasattr(routine, "close"):
            routine.close()
        import ray

        ray.shutdown()  # leaves the service's Ray instance and application running


def run(args) -> int:
    from deploy import runtime

    cfg = check_stream(load_config(args))  # a bad setting fails here, before anything starts
    if args.consumer_only:
        return run_consumer_only(args, cfg)
    stop = threading.Event()
    pipeline = routine = extra = None

    def on_signal(*_):
        stop.set()
        if pipeline is not None:
            pipeline.request_stop()

    print(f"[serve] starting Ray Serve application '{cfg.app_name}' (plan {cfg.service.plan_path})", flush=True)
    handle, plan, address = start_service(cfg)
    for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs its own SIGTERM handler (sys.exit)
        signal.signal(sig, on_signal)
    try:
        print(f"[serve] ensemble service on http://{cfg.http.host}:{cfg.http.port} (Ray at {address}; members: "
              f"{', '.join(plan.members)}; verdict floor: {plan.floor().name if cfg.service.verdict_floor == 'auto' else cfg.service.verdict_floor})",
              flush=True)
        if args.service_only:
            print("[serve] ready: POST /v1/score  GET /v1/ensembles  GET /healthz  (Ctrl-C stops)", flush=True)
            stop.wait(args.duration_s)
            return 0
        routine, verdicts = stream_scorers(cfg, handle, plan)
        pipeline = build_pipeline(cfg, routine, verdicts, _kafka_settings(cfg))
        pipeline.start()
        print(f"[serve] bootstrap servers: {pipeline.bootstrap_servers}"
              + ("  (embedded broker, in memory with no retention: ~13 GB of waveforms per hour at 1,000 beds; "
                 "long runs need --bootstrap-servers on a cluster with retention)" if pipeline.broker is not None else ""), flush=True)
        print(f"[serve] routine windows: {routine.name}; verdicts: {verdicts.name}", flush=True)
        if cfg.stream.consumers > 1:
            extra = ExtraConsumers(cfg, cfg.stream.consumers, pipeline.bootstrap_servers, address, args.metrics_json)
        own = threading.Event()
        pipeline.on_ready(lambda p: own.set())
        threading.Thread(target=_announce_ready, args=(pipeline, own, extra, stop, on_signal), daemon=True).start()
        if stop.is_set():
            pipeline.request_stop()
        metrics = pipeline.run(timeout_s=args.duration_s)
        metrics["service"] = {"plan": cfg.service.plan_path, "floor": plan.floor().name, "stats": getattr(routine, "stats", {})}
        if extra is not None:
            metrics["extra_consumers"], extra = extra.stop(), None
        c = metrics["counters"]
        print(f"[serve] stopped: windows {c.get('windows_scored', 0)}, verdicts {c.get('verdicts', 0)} "
              f"(degraded {c.get('verdicts_degraded', 0)}, late {c.get('verdicts_late', 0)}), e2e p99 "
              f"{metrics['e2e_ms'].get('p99')} ms, verdict p99 {metrics['verdict_e2e_ms'].get('p99')} ms", flush=True)
        _write_metrics(args.metrics_json, metrics)
        return 0
    finally:
        if extra is not None:
            extra.stop()  # before the embedded broker and Ray go
        if pipeline is not None:
            pipeline.close()
        if routine is not None and hasattr(routine, "close"):
            routine.close()  # the scoring worker processes, if any
        runtime.shutdown(cfg.app_name)
        print("[serve] stopped Serve, Ray" + (" and the embedded broker" if pipeline is not None and cfg.kafka.bootstrap_servers is None else ""),
              file=sys.stderr, flush=True)
