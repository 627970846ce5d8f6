"""Shared work on the running service: each plan row's service time against its shared work (CNN preprocessing and
features, done once per request by the ingress) plus the sum of its members' heads, at batch 1 and 64; and what the
same members cost when each does its own preprocessing / features (``predict_proba`` on raw windows, in process).

    .venv/bin/python bench/serve_shared.py [--plan deploy/plan.json] [--reps 7]

Writes bench/results/serve_shared.json and .png and prints a table (medians over --reps requests, one run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _servebench import machine, real_windows, write_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", default=str(ROOT / "deploy" / "plan.json"))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = ap.parse_args()

    from tqdm import tqdm

    from deploy import runtime
    from deploy.config import ServeConfig
    from holmes.compose.plan import Plan
    from models.ensemble import prepare
    from models.registry import Registry

    plan = Plan.load(args.plan)
    reg = Registry()
    version = plan.registry.get("version") or reg.latest()
    w64, m64, a64 = real_windows(max(args.batches), 16.0)
    # in process, one thread: each member on raw windows (its own preprocessing / features) and the shared work alone
    import torch

    torch.set_num_threads(1)
    members = {n: reg.load(n, version) for n in plan.members}
    own, shared_local = {}, {}
    for b in args.batches:
        w, m, a = w64[:b], m64[:b], a64[:b]
        for n, mem in members.items():
            ts = []
            for _ in range(args.reps):
                t = time.perf_counter()
                mem.predict_proba(w, m, a)
                ts.append((time.perf_counter() - t) * 1e3)
            own[(n, b)] = float(np.median(ts))
        for what in ({"cnn"}, {"features"}):
            ts = []
            for _ in range(args.reps):
                t = time.perf_counter()
                prepare(w, m, what)
                ts.append((time.perf_counter() - t) * 1e3)
            shared_local[(next(iter(what)), b)] = float(np.median(ts))

    runtime.start_local(2, "127.0.0.1", None)
    rows = []
    try:
        config = ServeConfig(registry_dir=str(reg.path), registry_version=version, window_s=16.0)
        handle = runtime.run_app(config, plan, "holmes_shared", route_prefix=None)
        runtime.warm_up(handle, plan, 16.0, tuple(args.batches))
        for b in args.batches:
            w, m, a = w64[:b], m64[:b], a64[:b]
            for e in tqdm(plan.ensembles, desc=f"batch {b}", unit="row"):
                outs = []
                for _ in range(args.reps):
                    outs.append(handle.score.remote(w, m, a, 60_000.0, e.name).result(timeout_s=300))
                lat = [o["latency_ms"] for o in outs]
                med = lambda xs: float(np.median(xs))  # noqa: E731
                heads = {n: med([x["members"][n] for x in lat]) for n in e.members}
                kinds = {plan.kinds.get(n, "features") for n in e.members}
                rows.append({
                    "ensemble": e.name, "members": len(e.members), "batch": b,
                    "service_ms": med([x["ingress_total"] for x in lat]), "shared_ms": med([x["shared"] for x in lat]),
                    "fanout_ms": med([x["fanout"] for x in lat]), "sum_heads_ms": sum(heads.values()), "max_head_ms": max(heads.values()),
                    "heads_ms": heads,
                    "in_process_sum_own_ms": sum(own[(n, b)] for n in e.members),
                    "in_process_shared_plus_heads_ms": sum(shared_local[(k, b)] for k in kinds if k in ("cnn", "features")) + sum(heads.values()),
                })
    finally:
        runtime.shutdown()
    out = {"machine": machine(), "plan": args.plan, "registry_version": version, "reps": args.reps, "rows": rows,
           "shared_in_process_ms": {f"{k}@{b}": v for (k, b), v in shared_local.items()},
           "member_own_ms": {f"{n}@{b}": v for (n, b), v in own.items()}}
    path = write_json("serve_shared.json", out)
    print(f"\n{'ensemble':<14} {'k':>2} {'batch':>5} {'service ms':>10} {'shared ms':>9} {'sum heads':>9} {'fan-out':>8} "
          f"{'each own (in proc)':>18} {'shared+heads (in proc)':>22}")
    for r in rows:
        print(f"{r['ensemble']:<14} {r['members']:>2} {r['batch']:>5} {r['service_ms']:>10.1f} {r['shared_ms']:>9.1f} {r['sum_heads_ms']:>9.1f} "
              f"{r['fanout_ms']:>8.1f} {r['in_process_sum_own_ms']:>18.1f} {r['in_process_shared_plus_heads_ms']:>22.1f}")
    _plot(ROOT / "bench" / "results" / "serve_shared.png", rows, args.batches)
    print(f"wrote {path}")
    return 0


def _plot(path: Path, rows, batches) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4))
    for ax, b in zip(np.atleast_1d(axes), batches):
        rs = [r for r in rows if r["batch"] == b]
        x = np.arange(len(rs))
        ax.bar(x - 0.2, [r["shared_ms"] for r in rs], 0.4, label="shared (once)")
        ax.bar(x - 0.2, [r["sum_heads_ms"] for r in rs], 0.4, bottom=[r["shared_ms"] for r in rs], label="sum of heads")
        ax.bar(x + 0.2, [r["in_process_sum_own_ms"] for r in rs], 0.4, label="each member its own (no sharing)")
        ax.plot(x - 0.2, [r["service_ms"] for r in rs], "k_", ms=20, mew=2, label="service time (ingress total)")
        ax.set_xticks(x, [f"{r['ensemble']}\n({r['members']})" for r in rs], fontsize=7)
        ax.set_ylabel("ms per request")
        ax.set_title(f"batch {b}")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
