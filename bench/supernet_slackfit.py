"""SlackFit against always-largest and always-smallest on the running supernet deployment, steady and bursty.

    .venv/bin/python bench/supernet_slackfit.py [--rate 40] [--windows 16] [--slo-ms 150] [--duration-s 30] [--cv 4]

Starts Ray (2 CPUs) and one ``deploy.supernet.SupernetModel`` replica holding every subnet of the registry's
supernet, then replays two arrival traces of requests of ``--windows`` real alarm windows each (a ward's beds,
preprocessed once by the client as the HOLMES ingress does, so the replica's time is the subnets' own): a
steady one (Poisson arrivals) and a bursty one (gamma inter-arrival times with coefficient of variation
``--cv``), both at ``--rate`` requests/s on average, each against the three policies in turn. A request meets its SLO when its answer is back at the client within ``--slo-ms`` of its
arrival. Accuracy of a request is the nested-CV challenge score of the subnet that answered it.

Writes bench/results/supernet_slackfit.json and .png, with ``bench/features_cost.py``'s figure of this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _servebench import features_cost, machine, pct, real_windows, start_ray, write_json  # noqa: E402

POLICIES = ("slackfit", "largest", "smallest")


def arrivals(kind: str, rate: float, duration_s: float, cv: float, seed: int) -> np.ndarray:
    """Arrival times (s) of a renewal process with mean rate ``rate``: exponential gaps (steady) or gamma gaps
    with coefficient of variation ``cv`` (bursty)."""
    rng = np.random.default_rng(seed)
    n = int(rate * duration_s * 1.5) + 10
    if kind == "steady":
        gaps = rng.exponential(1.0 / rate, n)
    else:
        shape = 1.0 / cv**2
        gaps = rng.gamma(shape, 1.0 / (rate * shape), n)
    t = np.cumsum(gaps)
    return t[t < duration_s]


async def replay(handle, refs, types, times: np.ndarray, slo_ms: float, mode: str) -> dict:
    loop_start = time.time() + 0.2
    lat, met, subnets, batches = [], [], [], []

    async def one(i: int, t_arr: float):
        k = i % len(refs)
        deadline = t_arr + slo_ms / 1000.0
        out = await handle.slackfit.remote(refs[k], types[k], deadline, mode)
        done = time.time()
        lat.append((done - t_arr) * 1000.0)
        met.append(done <= deadline)
        subnets.append(out["subnet"])
        batches.append(out["batch"])

    tasks = []
    for i, t in enumerate(times):
        t_arr = loop_start + float(t)
        delay = t_arr - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, t_arr)))
    await asyncio.gather(*tasks)
    return {"latency_ms": lat, "met": met, "subnets": subnets, "batches": batches}


def summarise(res: dict, accuracy: dict, slo_ms: float) -> dict:
    acc = np.array([accuracy[s] for s in res["subnets"]])
    names, counts = np.unique(res["subnets"], return_counts=True)
    return {
        "requests": len(res["met"]),
        "slo_attainment": round(float(np.mean(res["met"])), 4),
        "mean_accuracy": round(float(acc.mean()), 3),
        "mean_accuracy_within_slo": round(float(np.mean(np.where(res["met"], acc, 0.0))), 3),
        "latency_ms": {"p50": round(pct(res["latency_ms"], 50), 1), "p99": round(pct(res["latency_ms"], 99), 1)},
        "mean_batch": round(float(np.mean(res["batches"])), 2),
        "subnets_used": {str(n): int(c) for n, c in zip(names, counts)},
        "slo_ms": slo_ms,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    traces = list(result["traces"])
    x = np.arange(len(traces))
    for j, pol in enumerate(POLICIES):
        att = [result["traces"][t][pol]["slo_attainment"] * 100 for t in traces]
        acc = [result["traces"][t][pol]["mean_accuracy"] for t in traces]
        axes[0].bar(x + (j - 1) * 0.27, att, 0.27, label=pol)
        axes[1].bar(x + (j - 1) * 0.27, acc, 0.27, label=pol)
    for ax, title in zip(axes, ("SLO attainment (%)", "mean accuracy (nested-CV score of the subnet served)")):
        ax.set_xticks(x, [f"{t} (cv {result['traces'][t]['cv']:.1f})" for t in traces])
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    lo = min(result["traces"][t][p]["mean_accuracy"] for t in traces for p in POLICIES)
    axes[1].set_ylim(lo - 3, None)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"one supernet replica, {result['rate_per_s']:.0f} requests/s x {result['windows_per_request']} windows, "
                 f"SLO {result['slo_ms']:.0f} ms", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=40.0, help="mean requests per second")
    ap.add_argument("--windows", type=int, default=16, help="windows per request")
    ap.add_argument("--slo-ms", type=float, default=150.0)
    ap.add_argument("--duration-s", type=float, default=30.0)
    ap.add_argument("--cv", type=float, default=4.0, help="coefficient of variation of the bursty trace's gaps")
    ap.add_argument("--reps", type=int, default=3, help="runs per (trace, policy), medians reported")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--registry", default=str(ROOT / "artifacts" / "registry"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    fc = features_cost()
    cost = {"rows": fc.get("rows"), "beds_per_core_at_1hz": fc.get("beds_per_core_at_1hz")}
    ray, serve = start_ray(port=None)
    from deploy.supernet import SupernetModel
    from models.ensemble import prepare

    app = SupernetModel.options(name="supernet", ray_actor_options={"num_cpus": 0.5}).bind(
        {"registry_dir": args.registry, "registry_version": None, "names": None}, 1, 64, 0.0, 5, 128)
    handle = serve.run(app, name="supernet_bench", route_prefix=None)
    info = handle.info.remote().result(timeout_s=300)
    print(f"supernet replica: {len(info['subnets'])} subnets, front {info['front']}, weights {info['weights_bytes'] / 2**20:.2f} MB")
    w, m, a = real_windows(8 * args.windows, seed=args.seed)
    n = args.windows
    refs = [ray.put(prepare(w[i : i + n], m[i : i + n], {"cnn"})) for i in range(0, len(w), n)]
    types = [a[i : i + n] for i in range(0, len(w), n)]
    for k in range(3):  # warm the replica's paths
        handle.slackfit.remote(refs[k], types[k], time.time() + 1.0, "largest").result()

    result = {"rate_per_s": args.rate, "windows_per_request": n, "windows_per_s": args.rate * n, "slo_ms": args.slo_ms, "duration_s": args.duration_s, "machine": machine(),
              "features_cost_ms": cost, "profile_ms": info["latency_ms"], "accuracy": info["accuracy"], "front": info["front"],
              "traces": {}}
    for kind in ("steady", "bursty"):
        times = arrivals(kind, args.rate, args.duration_s, args.cv, args.seed)
        gaps = np.diff(times)
        result["traces"][kind] = {"cv": round(float(gaps.std() / gaps.mean()), 2), "requests": int(len(times))}
        runs = {pol: [] for pol in POLICIES}
        for rep in range(args.reps):  # the policies take turns, in a rotated order each repeat
            for j in range(len(POLICIES)):
                pol = POLICIES[(j + rep) % len(POLICIES)]
                res = asyncio.run(replay(handle, refs, types, times, args.slo_ms, pol))
                runs[pol].append(summarise(res, info["accuracy"], args.slo_ms))
                time.sleep(1.0)
        for pol in POLICIES:
            med = lambda key: float(np.median([r[key] for r in runs[pol]]))  # noqa: E731
            s = {"slo_attainment": round(med("slo_attainment"), 4), "mean_accuracy": round(med("mean_accuracy"), 3),
                 "latency_ms": {q: round(float(np.median([r["latency_ms"][q] for r in runs[pol]])), 1) for q in ("p50", "p99")},
                 "mean_batch": round(med("mean_batch"), 2), "runs": runs[pol]}
            result["traces"][kind][pol] = s
            print(f"{kind:<7} {pol:<9} SLO {s['slo_attainment'] * 100:6.1f} % (runs {[round(r['slo_attainment'] * 100, 1) for r in runs[pol]]})  "
                  f"accuracy {s['mean_accuracy']:6.2f}  p50/p99 {s['latency_ms']['p50']:.0f}/{s['latency_ms']['p99']:.0f} ms  "
                  f"mean batch {s['mean_batch']}", flush=True)
    serve.shutdown()
    ray.shutdown()
    path = write_json(f"supernet_slackfit{args.tag}.json", result)
    plot(result, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
