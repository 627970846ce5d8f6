"""``holmes demo``: the main job on embedded defaults.

Runs the whole service path on embedded defaults: the embedded Kafka-compatible broker, the Ray Serve
application of the committed plan (``deploy/holmes.yaml``), the stream consumer with the configured routine
scorer (features-typed-inc on per-patient incremental features, in process, by default) and the verdict lane for alarms; replays real records as live patients (the seconds around each
monitor alarm), then prints each verdict next to the true label with the ensemble that answered it and its
ms from sample to published, the end-to-end latency and stream counters, and draws the risk curves (PNG).

    holmes demo [--data DIR] [--patients 12] [--scorer service] [--start-s 270] [--end-s 310] [--out out/demo]

``--scorer features`` / ``cascade`` score in this process instead (no Ray: quicker to start).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="live replay of real records through Kafka, scored (the main job)")
    p.add_argument("--data", help="CinC-2015-style folder (default: $HOLMES_DATA, cache, ../shared/data/cinc2015)")
    p.add_argument("--patients", type=int, default=12, help="records replayed as simultaneous patients (default 12)")
    p.add_argument("--scorer", default="service", help="service (the whole path: Ray Serve, cascade, verdict lane; default), "
                   "or in process: features, cascade")
    p.add_argument("--config", help="service YAML for --scorer service (default deploy/holmes.yaml)")
    p.add_argument("--registry", help="model registry folder (default artifacts/registry)")
    p.add_argument("--start-s", type=float, default=270.0, help="record second the replay starts at (default 270)")
    p.add_argument("--end-s", type=float, default=310.0, help="record second the replay stops at (default 310)")
    p.add_argument("--window-s", type=float, default=16.0)
    p.add_argument("--speed", type=float, default=4.0, help="x real time (default 4; latency is measured from sample time)")
    p.add_argument("--out", default="out/demo", help="folder for scores.json, metrics.json and risk.png")
    p.set_defaults(func=run)


def _pick(records, n: int):
    """Up to n records covering every alarm type, true and false alarms alternating."""
    by = {}
    for r in records:
        by.setdefault((r.alarm_type, r.label), []).append(r)
    keys = sorted(by)
    out = []
    while len(out) < n and any(by.values()):
        for k in keys:
            if by[k] and len(out) < n:
                out.append(by[k].pop(0))
    return out


def run(args) -> int:
    from models.data import load_dataset, resolve_data_dir
    from models.errors import InvalidFieldError
    from models.tables import format_table
    from streams.broker import Topics
    from streams.consumer import ConsumerConfig
    from streams.pipeline import ReplayPlan, StreamPipeline
    from streams.replay import build_streams
    from streams.testing import dedup_last, read_scores
    from streams.windows import WindowConfig

    if args.patients < 1:
        raise InvalidFieldError("--patients", "must be >= 1", args.patients)
    if not args.end_s - args.start_s > args.window_s:
        raise InvalidFieldError("--end-s", f"must be more than window_s ({args.window_s}) after --start-s", args.end_s)
    data_dir = resolve_data_dir(args.data)
    records, skipped = load_dataset(data_dir)
    records = _pick([r for r in records if r.label is not None], args.patients)
    service = args.scorer == "service"
    runtime = None
    if service:
        from deploy import runtime
        from holmes.commands.serve import start_service, stream_scorers
        from deploy.holmes_config import HolmesConfig

        cfg = HolmesConfig.load(args.config, {"service.registry_dir": args.registry, "http.port": 0})
        print(f"[demo] starting the Ray Serve application of {cfg.service.plan_path} (a minute or two on 2 cores)", flush=True)
        handle, plan, _ = start_service(cfg)
        scorer, verdicts = stream_scorers(cfg, handle, plan)
    else:
        scorer, verdicts = _in_process_scorer(args), None
    streams = build_streams(records)
    print(f"[demo] {len(records)} patients from {data_dir}, record seconds {args.start_s:g}-{args.end_s:g}, "
          f"routine windows: {scorer.name}, verdicts: {(verdicts or scorer).name}", flush=True)
    pipeline = StreamPipeline(scorer, None, Topics.with_prefix(None), WindowConfig(window_s=args.window_s, hop_s=1.0),
                              ConsumerConfig(group_id="holmes-demo", deadline_ms=1000.0), verdicts=verdicts,
                              replay=ReplayPlan(streams, args.speed, args.start_s, args.end_s), progress_every_s=None)
    try:
        pipeline.start()
        print(f"[demo] embedded broker at {pipeline.bootstrap_servers}", flush=True)
        metrics = pipeline.run(timeout_s=300.0)
        scores = list(dedup_last(read_scores(pipeline.settings, pipeline.topics.risk, timeout_s=20.0)).values())
    finally:
        pipeline.close()
        if runtime is not None:
            runtime.shutdown(cfg.app_name)
    _report(args, records, scores, metrics, format_table)
    return 0


def _in_process_scorer(args):
    import importlib

    from holmes.commands.stream import SCORER_PLUGINS
    from streams.scorer import available_scorers, make_scorer

    if args.scorer not in available_scorers() and args.scorer in SCORER_PLUGINS:
        importlib.import_module(SCORER_PLUGINS[args.scorer])
    opts = {"registry": args.registry, "data": args.data}
    return make_scorer(args.scorer, **{k: v for k, v in opts.items() if v is not None})


def _report(args, records, scores, metrics, format_table) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    by_patient: dict[str, list] = {}
    for s in scores:
        by_patient.setdefault(s.patient_id, []).append(s)
    rows = []
    for r in records:
        mine = sorted(by_patient.get(r.name, []), key=lambda s: s.window_end_s)
        answer = [s for s in mine if s.verdict is not None]
        v = answer[-1] if answer else None
        rows.append({"patient": r.name, "alarm": r.alarm_type, "label": "true" if r.label else "false",
                     "windows": len(mine), "p_at_alarm": None if v is None else v.probability,
                     "verdict": "-" if v is None else ("true" if v.verdict else "false"),
                     "by": "-" if v is None else _answered_by(v.models),  # which model or ensemble answered the alarm
                     "verdict_ms": None if v is None else (v.published_unix_s - v.sample_unix_s) * 1e3,
                     "ok": "-" if v is None else ("yes" if bool(v.verdict) == bool(r.label) else "NO")})
    print()
    print(format_table(rows, [("patient", "patient", ""), ("alarm", "alarm type", ""), ("label", "label", ""),
                              ("windows", "windows", "d"), ("p_at_alarm", "P(true)", ".3f"), ("verdict", "verdict", ""),
                              ("ok", "correct", ""), ("by", "answered by", ""), ("verdict_ms", "ms", ".0f")]))
    e2e = metrics.get("e2e_ms", {})
    c = metrics.get("counters", {})
    answered = [r for r in rows if r["ok"] != "-"]
    print(f"\nverdicts: {sum(r['ok'] == 'yes' for r in answered)}/{len(answered)} correct (the models were trained on these "
          f"records: a demonstration, not an accuracy figure; `holmes evaluate --cv` gives honest ones); windows scored "
          f"{c.get('windows_scored', 0)}, dead letters {c.get('dead_letters', 0)}")
    print(f"end-to-end latency (sample time -> score published): p50 {e2e.get('p50')} ms, p95 {e2e.get('p95')} ms, "
          f"p99 {e2e.get('p99')} ms")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    (out / "scores.json").write_text(json.dumps([{"patient": s.patient_id, "window_end_s": s.window_end_s,
                                                  "alarm_type": s.alarm_type,
                                                  "probability": s.probability, "verdict": s.verdict, "models": s.models,
                                                  "risk_alarm": s.risk_alarm, "degraded": s.degraded,
                                                  "e2e_ms": (s.published_unix_s - s.sample_unix_s) * 1e3} for s in scores], indent=1))
    _plot(out / "risk.png", records, by_patient)
    print(f"wrote {out}/scores.json, metrics.json, risk.png")


def _answered_by(models) -> str:
    """The plan row (and its size) that answered, the verdict bag, or the model / ensemble name."""
    models = list(models)
    from models.verdict_bag import NAME as BAG

    if models and models[0] == BAG:  # the mean of the bag's pipelines (streams.verdict_blend, models.verdict_bag)
        from models.definition_gate import NAME as GATE
        from models.vt_spectral import NAME as RESCORER

        return (f"{BAG} ({' + '.join(models[1:3])} pipelines)" + (f", capped by the {GATE} in some" if GATE in models else "")
                + (f", re-scored by {RESCORER}" if RESCORER in models else ""))
    if models and models[0].startswith("plan:"):
        from models.definition_gate import NAME as GATE
        from models.incremental_model import NAME
        from models.verdict_shift import NAME as SHIFT
        from models.vt_spectral import NAME as RESCORER

        # blended with the incremental model (VerdictBlend), shifted, capped by the alarm definition's gate, VT re-scored
        blend, shift, gate, again = NAME in models, SHIFT in models, GATE in models, RESCORER in models
        return (f"{models[0][5:]} ({len(models) - 1 - blend - shift - gate - again} models)" + (f" + {NAME}" if blend else "")
                + (f" over earlier windows ({SHIFT})" if shift else "") + (f", capped by the {GATE}" if gate else "")
                + (f", re-scored by {RESCORER}" if again else ""))
    return "+".join(models)[:30]


def _plot(path, records, by_patient) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in records:
        mine = sorted(by_patient.get(r.name, []), key=lambda s: s.window_end_s)
        t = np.array([s.window_end_s for s in mine])
        p = np.array([np.nan if s.probability is None else s.probability for s in mine])
        ax.plot(t, p, "-" if r.label else "--", lw=1.2, label=f"{r.name} {r.alarm_type[:12]} ({'true' if r.label else 'false'})")
    ax.axvline(300.0, color="k", lw=0.8)
    ax.text(300.5, 0.02, "monitor alarm", fontsize=8)
    ax.set_xlabel("record time (s): end of the scored window")
    ax.set_ylabel("P(life-threatening arrhythmia)")
    ax.set_ylim(0, 1)
    ax.set_title("Risk per patient, scored every second from Kafka (solid: true alarm, dashed: false)")
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
