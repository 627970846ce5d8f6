"""Check the queueing model against the running service: one ensemble, Poisson request arrivals (64 real
windows each) at several utilisations; measured p50/p99 next to the M/D/1 prediction from the measured
service time (holmes.queueing.latency_at_load).

    .venv/bin/python bench/serve_queueing.py --plan artifacts/plan.json --budget-ms 250
    -> bench/results/serve_queueing.json, serve_queueing.png
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servebench import RESULTS, machine, member_window_s, pct, real_windows, start_ray, write_json  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", default="artifacts/plan.json")
    ap.add_argument("--budget-ms", type=float, default=250.0, help="the plan's ensemble for this budget")
    ap.add_argument("--rho", default="0.2,0.4,0.6,0.8", help="utilisations to offer")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--max-seconds", type=float, default=45.0, help="cap per utilisation")
    ap.add_argument("--latency-model", default=str(RESULTS / "serve_profile.json"), help="for the p99/p50 tail factor")
    ap.add_argument("--out", default="serve_queueing.json")
    args = ap.parse_args(argv)

    from deploy import ServeConfig, build
    from holmes.compose.plan import Plan
    from holmes.queueing import Load, latency_at_load
    from models.registry import Registry

    plan = Plan.load(args.plan)
    spec = next(e for e in plan.ensembles if e.budget_ms == args.budget_ms)
    reg = Registry(plan.registry.get("path"))
    version = plan.registry.get("version") or reg.latest()
    profiles = {p["name"]: p for p in reg.profiles(version)}
    w, m, a = real_windows(64, member_window_s(profiles, spec.members))
    tail = 1.3
    if Path(args.latency_model).is_file():
        tail = json.loads(Path(args.latency_model).read_text())["latency_model"].get("tail_factor", tail)
    sub = Plan((spec,), {k: plan.member_latency_ms[k] for k in spec.members}, plan.latency_model, plan.load, plan.registry)
    ray, serve = start_ray()
    rows = []
    try:
        handle = serve.run(build(ServeConfig(registry_dir=str(reg.path), registry_version=version), sub), name="queueing", route_prefix=None)
        ref = ray.put(w)
        svc = []
        for i in range(17):
            t0 = time.perf_counter()
            handle.score.remote(ref, m, a, 60000.0, spec.name).result()
            if i >= 2:
                svc.append((time.perf_counter() - t0) * 1000.0)
        S = float(np.median(svc))
        print(f"{spec.name} ({'+'.join(spec.members)}): service time back to back {S:.1f} ms (p99 {pct(svc, 99):.1f})", flush=True)
        rng = np.random.default_rng(0)
        for rho in [float(r) for r in args.rho.split(",")]:
            rate = rho / (S / 1000.0)
            n = int(min(args.requests, max(10, args.max_seconds * rate)))
            arrivals = np.cumsum(rng.exponential(1.0 / rate, size=n))
            lat = [None] * n
            start = time.perf_counter() + 0.2
            lock = threading.Lock()

            def one(i):
                time.sleep(max(start + arrivals[i] - time.perf_counter(), 0.0))
                t0 = time.perf_counter()
                handle.score.remote(ref, m, a, 60000.0, spec.name).result()
                with lock:
                    lat[i] = (time.perf_counter() - t0) * 1000.0

            with ThreadPoolExecutor(max_workers=32) as ex:
                list(ex.map(one, range(n)))
            pred = latency_at_load(np.array([S]), Load(64, rate_hz=rate, arrival="poisson"), tail_factor=tail)
            rows.append({"rho_offered": rho, "rate_hz": rate, "n": n, "measured_p50_ms": pct(lat, 50), "measured_p99_ms": pct(lat, 99),
                         "predicted_p50_ms": float(pred["p50_ms"][0]), "predicted_p99_ms": float(pred["p99_ms"][0])})
            r = rows[-1]
            print(f"rho {rho:.1f} ({rate:.2f} req/s, {n} req): measured p50 {r['measured_p50_ms']:.0f} p99 {r['measured_p99_ms']:.0f} ms; "
                  f"M/D/1 p50 {r['predicted_p50_ms']:.0f} p99 {r['predicted_p99_ms']:.0f} ms", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    path = write_json(args.out, {"plan": args.plan, "ensemble": spec.to_dict(), "service_ms": S, "tail_factor": tail, "machine": machine(), "rows": rows})
    print(f"wrote {path}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    x = [r["rho_offered"] for r in rows]
    for key, style in (("p50", "o"), ("p99", "s")):
        ax.plot(x, [r[f"measured_{key}_ms"] for r in rows], style + "-", label=f"measured {key}")
        ax.plot(x, [r[f"predicted_{key}_ms"] for r in rows], style + "--", label=f"M/D/1 {key}")
    ax.set_xlabel("offered utilisation rho = rate x service time")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Queueing model vs service ({len(spec.members)}-member ensemble, 64 windows/request)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / args.out.replace(".json", ".png"), dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
