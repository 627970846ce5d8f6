"""The cascade in the stream: fraction of windows that reached the Ray Serve service, and end-to-end latency
with the cascade against the service for every window, at the same bed count, in ONE run.

Real parts: the embedded Kafka-compatible broker, a real Ray Serve application (the composer's plan from
artifacts/plan.json, members from the registry; the policy picks the ensemble that fits the slack), real
WFDB records replayed in real time (record seconds START_S..END_S, the alarm at 300 s inside), one consumer
in this process per mode. Mode "cascade": cheap rungs in the consumer, escalated windows batched to the
service; mode "serve": every window to the service.

    .venv/bin/python bench/cascade_stream.py [--beds 32] [--stream-s 40]

Writes bench/results/cascade_stream.json and .png (cascade_stream_<N>beds.* for --beds N other than 32), prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _servebench import RESULTS, machine, start_ray, write_json  # noqa: E402

START_S = 270.0


def records_for_replay(n: int):
    """Long ('l') records, so the replay window reaches past the alarm, mixed over alarm types."""
    from models.data import list_records, load_dataset, resolve_data_dir

    data = resolve_data_dir()
    infos = [i for i in list_records(data) if i.name.endswith("l")]
    by_type: dict[str, list[str]] = {}
    for i in infos:
        by_type.setdefault(i.alarm_type, []).append(i.name)
    names = []
    while len(names) < n and any(by_type.values()):
        for t in sorted(by_type):
            if by_type[t] and len(names) < n:
                names.append(by_type[t].pop(0))
    recs, _ = load_dataset(data, names)
    return recs


def run_mode(mode: str, scorer, settings, recs, beds: int, stream_s: float) -> dict:
    from streams.broker import Topics
    from streams.consumer import ConsumerConfig
    from streams.pipeline import ReplayPlan, StreamPipeline
    from streams.replay import build_streams
    from streams.windows import WindowConfig

    tag = f"bench-{mode}-{int(time.time())}"
    streams = build_streams(recs, beds=beds)
    pipeline = StreamPipeline(scorer, settings, Topics.with_prefix(tag), WindowConfig(window_s=16.0, hop_s=1.0),
                              ConsumerConfig(group_id=tag, deadline_ms=1000.0),
                              replay=ReplayPlan(streams, 1.0, START_S, START_S + stream_s), progress_every_s=None)
    with pipeline:
        metrics = pipeline.run(timeout_s=stream_s + 120)
    return {"mode": mode, "expected_windows": beds * int(stream_s - 16 + 1), "metrics": metrics}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beds", type=int, default=32)
    ap.add_argument("--stream-s", type=float, default=40.0)
    ap.add_argument("--plan", default=str(ROOT / "artifacts" / "plan.json"))
    ap.add_argument("--variant-budget-ms", type=float, nargs="*", default=[8.0],
                    help="also run cascades fitted here with these per-stage budgets (more windows escalated)")
    args = ap.parse_args()

    from deploy import ServeConfig, build
    from deploy.scorer import ServeScorer
    from holmes.compose.plan import Plan
    from models.registry import Registry
    from streams.broker import EmbeddedBroker
    from unfold.persist import load
    from unfold.scorer import CascadeScorer

    reg = Registry()
    plan = Plan.load(args.plan)
    recs = records_for_replay(12)
    ray, serve = start_ray()
    broker = EmbeddedBroker().start()
    try:
        handle = serve.run(build(ServeConfig(registry_dir=str(reg.path), registry_version=reg.latest()), plan), name="holmes",
                           route_prefix=None)
        serve_scorer = ServeScorer(handle=handle, deadline_ms=1000.0, raw=True)  # the cascade gates read raw probabilities
        serve_scorer.score_arrays(*_warm_batch(recs), 1000.0)  # replicas loaded and warm before timing
        fitted = load()
        cascade = CascadeScorer(fitted, serve_scorer)
        out = {"machine": machine(), "beds": args.beds, "stream_s": args.stream_s, "record_s": [START_S, START_S + args.stream_s],
               "records": [r.name for r in recs], "plan": args.plan, "cascade_version": fitted.version, "runs": []}
        modes = [("cascade", cascade)] + [(f"cascade-b{b:g}", CascadeScorer(_variant(b), serve_scorer)) for b in args.variant_budget_ms]
        for mode, scorer in modes + [("serve", serve_scorer)]:
            r = run_mode(mode, scorer, broker.settings, recs, args.beds, args.stream_s)
            if mode.startswith("cascade"):
                r["cascade_stats"] = dict(scorer.stats)
                r["frac_to_service"] = scorer.stats["escalated"] / max(1, scorer.stats["windows"])
                r["budget_ms"] = scorer.fitted.info.get("budget_ms")
            else:
                r["frac_to_service"] = 1.0
            out["runs"].append(r)
            e = r["metrics"]["e2e_ms"]
            print(f"{mode:8s} windows {r['metrics']['counters'].get('windows_scored', 0):5d}/{r['expected_windows']}  "
                  f"to service {r['frac_to_service']:.3f}  e2e p50 {e.get('p50')} ms  p99 {e.get('p99')} ms", flush=True)
    finally:
        broker.stop()
        serve.shutdown()
        ray.shutdown()
    c, s = out["runs"][0]["metrics"]["e2e_ms"], out["runs"][-1]["metrics"]["e2e_ms"]
    out["p99_ratio_serve_over_cascade"] = s["p99"] / c["p99"] if c.get("p99") else None
    out["p50_ratio_serve_over_cascade"] = s["p50"] / c["p50"] if c.get("p50") else None
    stem = "cascade_stream" if args.beds == 32 else f"cascade_stream_{args.beds}beds"  # one file per bed count
    path = write_json(f"{stem}.json", out)
    _plot(out, RESULTS / f"{stem}.png")
    print(f"p99 serve-for-all / cascade = {out['p99_ratio_serve_over_cascade']:.2f}; wrote {path}")
    return 0


def _variant(budget_ms: float):
    """A cascade fitted here on the 300 records with another per-stage budget (not saved to artifacts/)."""
    import tempfile
    import warnings

    from models.data import load_dataset, resolve_data_dir
    from unfold.ensemble import EnsembleRef
    from unfold.fit import fit_cascade
    from unfold.persist import load, save

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs, _ = load_dataset(resolve_data_dir())
        fitted, _ = fit_cascade(recs, EnsembleRef.from_registry(), budget_ms, curve_ms=(), progress=False)
    folder = tempfile.mkdtemp(prefix="cascade-variant-")
    save(fitted, folder)
    return load(folder)


def _warm_batch(recs):
    import numpy as np

    from models.zoo_eval import alarm_batch

    w, m, a = alarm_batch(recs, 16.0)
    return np.asarray(w, dtype=np.float32), m, a


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    labels = [f"{r['mode']}\n({r['frac_to_service']:.1%} of windows to service)" for r in out["runs"]]
    for k, (q, col) in enumerate((("p50", "C0"), ("p95", "C1"), ("p99", "C3"))):
        vals = [r["metrics"]["e2e_ms"].get(q, float("nan")) for r in out["runs"]]
        ax.bar([i + 0.27 * (k - 1) for i in range(len(vals))], vals, width=0.27, color=col, label=q)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("end-to-end latency (ms, sample -> score published)")
    ax.set_title(f"Cascade vs service for every window, {out['beds']} beds, real time, one run", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
