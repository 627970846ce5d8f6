"""The composed ensembles on the running Ray Serve service at 64 beds: for each latency budget, the chosen
ensemble, its CV AUROC / challenge score, predicted latency and measured p50/p99; then the Ray overhead
(Serve path / in-process compute of the same ensemble at batch 64), measured in the same run.

    holmes compose --budget-ms 50,100,250,500,1000 --beds 64 --latency-model bench/results/serve_profile.json
    .venv/bin/python bench/serve_budgets.py --plan artifacts/plan.json --requests 60
    -> bench/results/serve_budgets.json, serve_budgets.png

Load: one request of ``beds`` real windows every 1/rate_hz seconds (the stream consumer's tick), deadline =
the budget, the budget's ensemble named in the request (so each row measures exactly that ensemble); a
second pass lets the policy choose from the deadline alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servebench import RESULTS, machine, member_window_s, pct, real_windows, start_ray, write_json  # noqa: E402


def periodic(handle, ray, w, m, a, n: int, period_s: float, deadline_ms: float, ensemble: str | None, desc: str) -> list[dict]:
    out = []
    for _ in range(3):  # warm-up
        handle.score.remote(ray.put(w), m, a, deadline_ms, ensemble).result()
    t_next = time.perf_counter()
    for _ in tqdm(range(n), desc=desc, unit="req", leave=False):
        t_next += period_s
        t0 = time.perf_counter()
        r = handle.score.remote(ray.put(w), m, a, deadline_ms, ensemble).result()
        out.append({"ms": (time.perf_counter() - t0) * 1000.0, "ensemble": r["ensemble"]["name"], "fanout_ms": r["latency_ms"]["fanout"],
                    "members_ms": r["latency_ms"]["members"], "fits": r["fits_deadline"]})
        time.sleep(max(t_next - time.perf_counter(), 0.0))
    return out


def burst_test(handle, ray, w, m, a, plan, n: int, deadline_ms: float, rounds: int = 2) -> dict:
    """``n`` requests at once: the policy (which sees the queue) against always the best ensemble. One discarded
    warm-up burst first (the first burst after a deploy is slower), then the two modes alternate ``rounds`` times."""
    from collections import Counter

    best = max(plan.ensembles, key=lambda e: (e.auroc or 0.0, -len(e.members)))
    modes = (("policy", None), (f"always {best.name}", best.name))
    times: dict[str, list] = {name: [] for name, _ in modes}
    chosen: dict[str, Counter] = {name: Counter() for name, _ in modes}
    ref = ray.put(w)

    def fire(ens):
        time.sleep(1.0)
        t0 = time.perf_counter()
        resps = [handle.score.remote(ref, m, a, deadline_ms, ens) for _ in range(n)]
        return [((time.perf_counter() - t0) * 1000.0, r.result()["ensemble"]["name"]) for r in resps]

    fire(best.name)  # warm-up, discarded
    for _ in range(rounds):
        for name, ens in modes:
            for t, e in fire(ens):
                times[name].append(t)
                chosen[name][e] += 1
    return {name: {"within_deadline": float(np.mean(np.array(times[name]) <= deadline_ms)), "p50_ms": pct(times[name], 50),
                   "max_ms": max(times[name]), "chosen": dict(chosen[name]), "n": len(times[name])} for name, _ in modes}


def inprocess_ms(members: list, w, m, a, reps: int, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    times = []
    for i in range(reps + 2):
        t0 = time.perf_counter()
        np.mean([mem.predict_proba(w, m, a) for mem in members], axis=0)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", default="artifacts/plan.json")
    ap.add_argument("--requests", type=int, default=60, help="requests per budget")
    ap.add_argument("--policy-requests", type=int, default=20, help="requests per budget with the policy choosing (0: skip)")
    ap.add_argument("--rate-hz", type=float, default=1.0)
    ap.add_argument("--overhead-reps", type=int, default=15)
    ap.add_argument("--burst", type=int, default=8, help="requests fired at once in the burst test (0: skip)")
    ap.add_argument("--burst-deadline-ms", type=float, default=1000.0)
    ap.add_argument("--out", default="serve_budgets.json")
    args = ap.parse_args(argv)

    from deploy import ServeConfig, build
    from holmes.compose.plan import Plan
    from models.registry import Registry

    plan = Plan.load(args.plan)
    reg = Registry(plan.registry.get("path"))
    version = plan.registry.get("version") or reg.latest()
    profiles = {p["name"]: p for p in reg.profiles(version)}
    beds = int(plan.load.get("beds", 64))
    w, m, a = real_windows(beds, member_window_s(profiles, plan.members))
    ray, serve = start_ray()
    rows, policy_rows = [], []
    try:
        t0 = time.perf_counter()
        handle = serve.run(build(ServeConfig(registry_dir=str(reg.path), registry_version=version), plan), name="holmes", route_prefix=None)
        deploy_s = time.perf_counter() - t0
        print(f"{len(plan.members)} members deployed in {deploy_s:.1f} s", flush=True)
        for e in (plan.ensembles if args.requests else ()):
            res = periodic(handle, ray, w, m, a, args.requests, 1.0 / args.rate_hz, e.budget_ms, e.name, f"budget {e.budget_ms:g} ms")
            ms = [r["ms"] for r in res]
            rows.append({**e.to_dict(), "measured_p50_ms": pct(ms, 50), "measured_p99_ms": pct(ms, 99), "measured_max_ms": max(ms),
                         "within_budget": float(np.mean(np.array(ms) <= e.budget_ms)), "n": len(ms),
                         "fanout_p50_ms": pct([r["fanout_ms"] for r in res], 50)})
        if args.policy_requests:
            for e in plan.ensembles:
                res = periodic(handle, ray, w, m, a, args.policy_requests, 1.0 / args.rate_hz, e.budget_ms, None, f"policy {e.budget_ms:g} ms")
                ms = [r["ms"] for r in res]
                chosen = sorted({r["ensemble"] for r in res})
                policy_rows.append({"deadline_ms": e.budget_ms, "chosen": chosen, "measured_p50_ms": pct(ms, 50), "measured_p99_ms": pct(ms, 99),
                                    "within_deadline": float(np.mean(np.array(ms) <= e.budget_ms)), "n": len(ms)})
        burst = burst_test(handle, ray, w, m, a, plan, args.burst, args.burst_deadline_ms) if args.burst else {}
        # Ray overhead: the largest ensemble at batch 64, back to back, then the same compute in process
        big = max(plan.ensembles, key=lambda e: (len(e.members), e.budget_ms or 0))
        wb, mb, ab = w[:64], m[:64], a[:64]
        serve_ms = []
        for i in range(args.overhead_reps + 2):
            t0 = time.perf_counter()
            handle.score.remote(ray.put(wb), mb, ab, 60000.0, big.name).result()
            if i >= 2:
                serve_ms.append((time.perf_counter() - t0) * 1000.0)
        members = [reg.load(n, version) for n in big.members]
        in1 = inprocess_ms(members, wb, mb, ab, args.overhead_reps, 1)
        in2 = inprocess_ms(members, wb, mb, ab, args.overhead_reps, 2)
        serve_med = float(np.median(serve_ms))
        overhead = {"ensemble": big.name, "members": list(big.members), "batch": 64, "serve_ms": serve_med, "serve_p99_ms": pct(serve_ms, 99),
                    "inprocess_1thread_ms": in1, "inprocess_2threads_ms": in2, "ratio_vs_best_inprocess": serve_med / min(in1, in2),
                    "ratio_vs_1thread": serve_med / in1, "reps": args.overhead_reps}
    finally:
        serve.shutdown()
        ray.shutdown()

    path = write_json(args.out, {"plan": args.plan, "registry": {"path": str(reg.path), "version": version}, "machine": machine(),
                                 "load": {"beds": beds, "rate_hz": args.rate_hz, "windows_per_request": beds}, "deploy_s": deploy_s,
                                 "budgets": rows, "policy": policy_rows, "burst": burst, "ray_overhead": overhead})
    print(f"\n{'budget':>6} {'AUROC':>6} {'score':>5} {'pred p99':>8} {'p50':>7} {'p99':>7} {'<=budget':>8}  members")
    for r in rows:
        print(f"{r['budget_ms']:6g} {r['auroc']:6.3f} {r['score']:5.1f} {r['p99_ms']:8.1f} {r['measured_p50_ms']:7.1f} {r['measured_p99_ms']:7.1f} "
              f"{r['within_budget']:8.0%}  {'+'.join(r['members'])}")
    for r in policy_rows:
        print(f"policy, deadline {r['deadline_ms']:g} ms: chose {', '.join(r['chosen'])}; p50 {r['measured_p50_ms']:.1f} p99 {r['measured_p99_ms']:.1f} ms, "
              f"{r['within_deadline']:.0%} within")
    for mode, r in burst.items():
        print(f"burst of {args.burst} x 64 windows, deadline {args.burst_deadline_ms:g} ms, {mode}: {r['within_deadline']:.0%} within, "
              f"p50 {r['p50_ms']:.0f} max {r['max_ms']:.0f} ms, ensembles {r['chosen']}")
    o = overhead
    print(f"Ray overhead, {o['ensemble']} ({len(o['members'])} members) at batch 64: Serve {o['serve_ms']:.1f} ms vs in-process "
          f"{o['inprocess_1thread_ms']:.1f} ms (1 thread) / {o['inprocess_2threads_ms']:.1f} ms (2 threads): ratio {o['ratio_vs_best_inprocess']:.2f}")
    print(f"wrote {path}")
    if rows:
        _plot(rows, RESULTS / args.out.replace(".json", ".png"))
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = [r["budget_ms"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.plot(b, [r["auroc"] for r in rows], "o-", label="CV AUROC")
    ax1.set_xscale("log")
    ax1.set_xlabel("latency budget (ms)")
    ax1.set_ylabel("CV AUROC")
    ax1b = ax1.twinx()
    ax1b.plot(b, [r["score"] for r in rows], "s--", color="C1", label="CV challenge score")
    ax1b.set_ylabel("nested-CV challenge score")
    ax1.set_title("Chosen ensemble's accuracy vs budget")
    ax1.legend(loc="lower right")
    ax1b.legend(loc="upper left")
    ax2.plot(b, b, "k:", label="budget")
    ax2.plot(b, [r["p99_ms"] for r in rows], "o-", label="predicted p99")
    ax2.plot(b, [r["measured_p50_ms"] for r in rows], "^-", label="measured p50")
    ax2.plot(b, [r["measured_p99_ms"] for r in rows], "v-", label="measured p99")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("latency budget (ms)")
    ax2.set_ylabel("latency at 64 beds (ms)")
    ax2.set_title("Latency on the running service")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
