"""``holmes broker``, ``holmes replay`` and ``holmes consume``: the Kafka side of the pipeline.

    holmes broker                                   # embedded Kafka-compatible broker; prints its address
    holmes replay DATA --bootstrap-servers H:P --speed 1 --beds 100
    holmes consume --bootstrap-servers H:P --scorer features
    holmes consume                                  # no cluster given: embedded broker + replay + consumer

Scorers are chosen by name from the ``streams.scorer`` registry; packages above ``streams`` register theirs
when imported (``SCORER_PLUGINS``), so ``--scorer serve`` / ``--scorer cascade`` work once those exist.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import threading

log = logging.getLogger("holmes.stream")

# scorer name -> module that registers it (imported on demand, so streams never imports upward)
SCORER_PLUGINS = {"features": "streams.feature_scorer", "serve": "deploy.scorer", "cascade": "unfold.scorer"}


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed must be a positive number or 'max', got {value!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"--speed must be > 0 or 'max', got {value!r}")
    return v


def _kafka_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Kafka cluster (default: start the embedded broker)")
    g.add_argument("--bootstrap-servers", help="HOST:PORT[,HOST:PORT] of an existing cluster")
    g.add_argument("--security-protocol", default="PLAINTEXT", help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    g.add_argument("--sasl-mechanism", help="e.g. PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    g.add_argument("--sasl-plain-username")
    g.add_argument("--sasl-plain-password", help="or set HOLMES_KAFKA_PASSWORD")
    g.add_argument("--ssl-cafile")
    g.add_argument("--ssl-certfile")
    g.add_argument("--ssl-keyfile")
    g.add_argument("--topic-prefix", help="namespace the icu.* topics as PREFIX.icu.* (several wards on one cluster)")


def _replay_args(p: argparse.ArgumentParser, positional: bool) -> None:
    g = p.add_argument_group("replay")
    if positional:
        g.add_argument("data", nargs="?", help="CinC-2015-style folder (default: --data, $HOLMES_DATA, shared data)")
    g.add_argument("--data", dest="data_opt", help="data folder (same as the positional DATA)")
    g.add_argument("--records", nargs="+", help="record names (default: every record in the folder)")
    g.add_argument("--limit", type=int, help="only the first N records")
    g.add_argument("--beds", type=int, help="N simultaneous patients cycling through the records (distinct ids)")
    g.add_argument("--speed", type=_speed, default=1.0, help="x real time, or 'max' (default 1)")
    g.add_argument("--start-s", type=float, default=0.0, help="record second to start from (default 0)")
    g.add_argument("--end-s", type=float, help="record second to stop at (default: record end)")
    g.add_argument("--stagger-s", type=float, default=0.0,
                   help="start the patients spread over this many seconds so their alarms arrive spread out (default 0: together)")
    g.add_argument("--alarm-every", type=int, default=1,
                   help="only every K-th patient raises its record's alarm (a ward's alarm rate at any bed count; default 1: all)")
    g.add_argument("--linger-ms", type=int, help="producer linger: how long a record batch waits for more chunks (default 20; the embedded "
                   "broker's cost goes per batch: 2 ms batches cost it ~2-4x the CPU)")


def _risk_args(p) -> None:
    p.add_argument("--risk-raise-at", type=float, default=0.7, help="risk alarm: raise at this calibrated P(true alarm)")
    p.add_argument("--risk-clear-below", type=float, default=0.5, help="risk alarm: clear below this for --risk-hold-s")
    p.add_argument("--risk-hold-s", type=float, default=10.0, help="risk alarm: seconds below --risk-clear-below to clear")


def _workers(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"--score-workers must be an integer in [1, 64], got {value!r}")
    return n


def register(sub) -> None:
    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu) in the foreground")
    p.add_argument("--port", type=int, help="listen port on 127.0.0.1 (default: a free port)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("replay", help="replay WFDB records into Kafka as live patient streams (or --offline: score them in process)")
    _replay_args(p, positional=True)
    _kafka_args(p)
    g = p.add_argument_group("offline (--offline: every window through the stream's scorer, no Kafka, no Ray)")
    g.add_argument("--offline", action="store_true", help="score every window of every record in process, as fast as the cores allow")
    g.add_argument("--out", default="out/replay/scores.csv", help="scores file (.csv, or .parquet)")
    g.add_argument("--scorer", default="features", help="features, member or cascade (its escalations in process)")
    g.add_argument("--registry", help="model registry folder (default: $HOLMES_REGISTRY or artifacts/registry)")
    g.add_argument("--member-path", help="pickled Member for --scorer member")
    g.add_argument("--workers", type=_workers, default=2, help="scoring processes (default 2)")
    g.add_argument("--window-s", type=float, default=16.0)
    g.add_argument("--hop-s", type=float, default=1.0)
    g.add_argument("--deadline-ms", type=float, default=1000.0)
    _risk_args(g)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("consume", help="score every patient window from Kafka and publish risk scores")
    _kafka_args(p)
    p.add_argument("--scorer", default="features", help="registered scorer name: features, member, serve, cascade")
    p.add_argument("--registry", help="model registry folder (default: $HOLMES_REGISTRY or artifacts/registry)")
    p.add_argument("--member-path", help="pickled Member for --scorer member")
    p.add_argument("--score-workers", type=_workers, default=1,
                   help="processes that score each tick's windows (features/member scorers; this one included)")
    p.add_argument("--group-id", default="holmes-scorer")
    p.add_argument("--window-s", type=float, default=16.0)
    p.add_argument("--hop-s", type=float, default=1.0)
    p.add_argument("--deadline-ms", type=float, default=1000.0, help="latency SLO from sample time to score published")
    _risk_args(p)
    p.add_argument("--duration-s", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--metrics-json", help="write the final metrics here")
    _replay_args(p, positional=False)
    p.set_defaults(func=cmd_consume)


def kafka_settings(args):
    """KafkaSettings from CLI arguments or any object with the same option names (``deploy.holmes_config.KafkaConfig``)."""
    import os

    from streams.broker import KafkaSettings

    return KafkaSettings(args.bootstrap_servers, security_protocol=args.security_protocol, sasl_mechanism=args.sasl_mechanism,
                         sasl_plain_username=args.sasl_plain_username,
                         sasl_plain_password=args.sasl_plain_password or os.environ.get("HOLMES_KAFKA_PASSWORD"),
                         ssl_cafile=args.ssl_cafile, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)


def _on_signals(handler) -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)


def cmd_broker(args) -> int:
    from streams.broker import DEFAULT_PARTITIONS, EmbeddedBroker

    broker = EmbeddedBroker(port=args.port).start()
    stop = threading.Event()
    _on_signals(lambda *_: stop.set())
    print(f"bootstrap servers: {broker.bootstrap_servers}", flush=True)
    print(f"topics: {', '.join(f'{t} ({n} partitions)' for t, n in DEFAULT_PARTITIONS.items())}", flush=True)
    print("Ctrl-C stops the broker (all data is in memory and is lost).", flush=True)
    while not stop.wait(0.5):
        if not broker.running:
            print("holmes: error: the broker exited; see its log: " + str(broker.log_path), file=sys.stderr)
            return 1
    broker.stop()
    return 0


def _load_streams(args):
    from models.data import list_records, load_dataset, resolve_data_dir
    from streams.replay import build_streams

    from models.errors import InvalidFieldError

    data_dir = resolve_data_dir(getattr(args, "data", None) or args.data_opt)
    known = [i.name for i in list_records(data_dir)]
    unknown = sorted(set(args.records or []) - set(known))
    if unknown:
        raise InvalidFieldError("--records", f"must name records listed in {data_dir}/RECORDS", unknown, known[:5] + ["..."])
    names = args.records or known
    if args.limit:
        names = names[: args.limit]
    records, skipped = load_dataset(data_dir, names, progress=len(names) > 20)
    for name, reason in skipped:
        log.warning("record %s skipped: %s", name, reason)
    if args.beds is not None and args.beds < 1:
        raise InvalidFieldError("--beds", "must be >= 1", args.beds)
    return build_streams(records, beds=args.beds)


def cmd_replay(args) -> int:
    from streams.broker import EmbeddedBroker, Topics, ensure_topics
    from streams.replay import replay

    if args.offline:
        return cmd_replay_offline(args)
    topics = Topics.with_prefix(args.topic_prefix)
    settings = kafka_settings(args) if args.bootstrap_servers else None
    streams = _load_streams(args)
    broker = None
    if settings is not None:
        ensure_topics(settings, topics)
    else:
        broker = EmbeddedBroker().start()
        settings = broker.settings
        ensure_topics(settings, topics)
        print(f"no --bootstrap-servers: embedded broker at {settings.bootstrap_servers} (stops when the replay ends)")
    stop = threading.Event()
    _on_signals(lambda *_: stop.set())
    try:
        stats = replay(settings, streams, speed=args.speed, start_s=args.start_s, end_s=args.end_s, stop=stop.is_set,
                       topics=topics, stagger_s=args.stagger_s, alarm_every=args.alarm_every, linger_ms=args.linger_ms)
    finally:
        if broker is not None:
            broker.stop()
    print(json.dumps({"patients": len(streams), **stats.as_dict()}, indent=2))
    return 0


def cmd_replay_offline(args) -> int:
    from pathlib import Path

    from streams.hysteresis import HysteresisConfig
    from streams.offline import OfflineConfig, replay_offline, write_rows
    from streams.windows import WindowConfig

    if args.scorer == "serve":
        from models.errors import InvalidFieldError

        raise InvalidFieldError("--scorer", "must run in process for --offline (features, member, cascade)", args.scorer)
    cfg = OfflineConfig(WindowConfig(window_s=args.window_s, hop_s=args.hop_s), args.start_s, args.end_s,
                        HysteresisConfig(args.risk_raise_at, args.risk_clear_below, args.risk_hold_s), deadline_ms=args.deadline_ms)
    records = [s.record for s in _load_streams(args)]
    args.score_workers = 1
    scorer = build_scorer(args, in_process=True)  # built once; forked workers inherit it
    rows, stats = replay_offline(records, lambda: scorer, cfg, workers=args.workers)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_rows(out, rows)
    print(json.dumps({**stats, "scorer": args.scorer, "out": str(out)}, indent=2))
    print(f"{stats['windows']} windows of {stats['records']} records ({stats['signal_s'] / 3600:.1f} h of signal) in "
          f"{stats['wall_s']:.1f} s: {stats['x_real_time']:.0f}x real time")
    return 0


def build_scorer(args, in_process: bool = False):
    """The scorer ``args.scorer`` names; ``in_process``: a cascade escalates to its ensemble in this process even
    when a Ray Serve service is running (offline replay)."""
    from models.errors import InvalidFieldError
    from streams.scorer import available_scorers, make_scorer

    workers = getattr(args, "score_workers", 1)
    if workers != 1 and args.scorer not in ("features", "member"):
        raise InvalidFieldError("--score-workers", f"applies to the in-process scorers (features, member), not {args.scorer!r}", workers)
    if args.scorer not in available_scorers() and args.scorer in SCORER_PLUGINS:
        importlib.import_module(SCORER_PLUGINS[args.scorer])  # registers the scorer
    opts = {"registry": args.registry, "member_path": args.member_path, "deadline_ms": args.deadline_ms,
            "data": getattr(args, "data_opt", None)}
    if workers != 1:
        opts["workers"] = workers
    if args.scorer == "cascade":
        opts["costly"], opts["verdicts"] = (None, None) if in_process else _cascade_service(args)
    return make_scorer(args.scorer, **{k: v for k, v in opts.items() if v is not None})


def _cascade_service(args):
    """(costly rung, verdict scorer) of the cascade: the Ray Serve service when one is running (``holmes serve``
    wrote its address, or $HOLMES_RAY_ADDRESS is set), else (None, None): the cascade then runs its ensemble in
    process. The costly rung reads the members' raw mean (the gates were tuned on it); verdicts publish the
    calibrated probability."""
    from deploy.runtime import ServiceUnavailableError, service_address

    try:
        address, source = service_address()
    except ServiceUnavailableError as e:
        log.info("cascade: no running Ray Serve service (%s); escalated windows and verdicts are scored in process", e)
        return None, None
    from streams.scorer import make_scorer

    importlib.import_module(SCORER_PLUGINS["serve"])
    try:
        return (make_scorer("serve", deadline_ms=args.deadline_ms, raw=True, ray_address=address),
                make_scorer("serve", deadline_ms=args.deadline_ms, lane="verdict", ray_address=address))
    except (ConnectionError, RuntimeError) as e:
        log.warning("cascade: the Ray Serve service at %s (%s) is not reachable (%s); escalated windows are scored in process",
                    address, source, e)
        return None, None


def _verdict_scorer(args, routine):
    """The verdict lane's scorer: the service's verdict lane when the routine scorer is the service (or a cascade
    escalating to it); None otherwise (the routine scorer answers alarms: the cascade with its ensemble)."""
    if args.scorer == "serve":
        from streams.scorer import make_scorer

        return make_scorer("serve", deadline_ms=args.deadline_ms, lane="verdict")
    v = getattr(routine, "verdicts", None)
    return v if getattr(v, "lane", None) == "verdict" else None


def cmd_consume(args) -> int:
    from streams.broker import Topics
    from streams.consumer import ConsumerConfig
    from streams.hysteresis import HysteresisConfig
    from streams.pipeline import ReplayPlan, StreamPipeline
    from streams.windows import WindowConfig

    hysteresis = HysteresisConfig(args.risk_raise_at, args.risk_clear_below, args.risk_hold_s)  # bad settings fail first
    scorer = build_scorer(args)
    settings, replay_plan = None, None
    if args.bootstrap_servers:
        settings = kafka_settings(args)
    else:
        streams = _load_streams(args)
        replay_plan = ReplayPlan(streams, args.speed, args.start_s, args.end_s, args.stagger_s, args.alarm_every, args.linger_ms)
    pipeline = StreamPipeline(scorer, settings, Topics.with_prefix(args.topic_prefix), WindowConfig(window_s=args.window_s, hop_s=args.hop_s),
                              ConsumerConfig(group_id=args.group_id, deadline_ms=args.deadline_ms, hysteresis=hysteresis),
                              verdicts=_verdict_scorer(args, scorer), replay=replay_plan)
    try:
        pipeline.start()
        if replay_plan is not None:
            print(f"no --bootstrap-servers: embedded broker at {pipeline.bootstrap_servers}, replaying {len(replay_plan.streams)} patients")
        _on_signals(pipeline.request_stop)
        metrics = pipeline.run(timeout_s=args.duration_s)
    finally:
        pipeline.close()
        close = getattr(scorer, "close", None)
        if close is not None:  # scoring worker processes, if any
            close()
    print(json.dumps(metrics, indent=2))
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump(metrics, f, indent=2)
    return 0
