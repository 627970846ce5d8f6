"""Service time of every zoo member measured on the running Ray Serve deployment, and the latency-model
parameters fitted from it (overhead outside the fan-out, per-member fan-out cost, p99/p50 tail factor).

    .venv/bin/python bench/serve_profile.py [--registry DIR] [--members a,b] [--reps 9]
    -> bench/results/serve_profile.json (``holmes compose --latency-model`` reads it), serve_profile.png

Members are deployed in groups (each group one application: ingress + one deployment per member); each
member is called alone through the ingress handle with batches of 1, 8 and 64 real windows.
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

BATCHES = (1, 8, 64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry")
    ap.add_argument("--version")
    ap.add_argument("--members", help="comma-separated (default: every member)")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--out", default="serve_profile.json")
    ap.add_argument("--profile-out", help="also write the service profile `holmes compose` reads by default (deploy/service_profile.json)")
    args = ap.parse_args(argv)

    from deploy import ServeConfig, build
    from holmes.compose.plan import EnsembleSpec, Plan
    from models.registry import Registry

    reg = Registry(args.registry)
    version = args.version or reg.latest()
    profiles = {p["name"]: p for p in reg.profiles(version) if p.get("kind") != "ensemble"}
    names = [m for m in args.members.split(",")] if args.members else sorted(profiles)
    window_s = member_window_s(profiles, names)
    w, m, a = real_windows(64, window_s)
    ray, serve = start_ray()
    config = ServeConfig(registry_dir=str(reg.path), registry_version=version)
    rows: dict[str, dict] = {}
    try:
        for g in range(0, len(names), args.group_size):
            group = names[g : g + args.group_size]
            # kinds: the group's subnets are served as the service serves them, by one supernet replica
            plan = Plan(tuple(EnsembleSpec(n, (n,)) for n in group), {n: profiles[n]["latency_ms"] for n in group}, {}, {}, {},
                        {n: profiles[n]["kind"] for n in group})
            t0 = time.perf_counter()
            handle = serve.run(build(config, plan), name="profile", route_prefix=None)
            print(f"group {g // args.group_size + 1}: {len(group)} members deployed in {time.perf_counter() - t0:.1f} s", flush=True)
            for name in tqdm(group, desc="members", unit="member"):
                row = {"inprocess_ms": profiles[name]["latency_ms"], "service_ms": {}, "fanout_ms": {}, "total_ms": {}, "total_p99_ms": {}, "outside_ms": {}}
                for b in BATCHES:
                    svc, fan, tot = [], [], []
                    for i in range(args.reps + 2):
                        t = time.perf_counter()
                        out = handle.score.remote(ray.put(w[:b]), m[:b], a[:b], 60000.0, name).result()
                        dt = (time.perf_counter() - t) * 1000.0
                        if i >= 2:  # two warm-up calls
                            # what the member costs alone: its head plus the shared work done for it by the ingress
                            # (an ensemble shares that work, so summing members over-counts it: a conservative model)
                            svc.append(out["latency_ms"]["members"][name] + out["latency_ms"].get("shared", 0.0))
                            fan.append(out["latency_ms"]["fanout"] + out["latency_ms"].get("shared", 0.0))
                            tot.append(dt)
                    row["service_ms"][str(b)] = float(np.median(svc))
                    row["fanout_ms"][str(b)] = float(np.median(fan))
                    row["total_ms"][str(b)] = float(np.median(tot))
                    row["total_p99_ms"][str(b)] = pct(tot, 99)
                    row["outside_ms"][str(b)] = float(np.median(np.array(tot) - np.array(fan)))
                rows[name] = row
    finally:
        serve.shutdown()
        ray.shutdown()

    outside = float(np.median([r["outside_ms"]["64"] for r in rows.values()]))
    per_member = float(np.median([r["fanout_ms"]["64"] - r["service_ms"]["64"] for r in rows.values()]))
    tail = float(np.median([r["total_p99_ms"]["64"] / r["total_ms"]["64"] for r in rows.values()]))
    model = {
        "overhead_ms": round(outside, 3),
        "per_member_ms": round(max(per_member, 0.0), 3),
        "n_workers": 2.0,
        "tail_factor": round(max(tail, 1.1), 3),
        "member_ms": {n: {b: round(r["service_ms"][b], 3) for b in r["service_ms"]} for n, r in rows.items()},
    }
    doc = {"registry": {"path": str(reg.path), "version": version}, "machine": machine(), "window_s": window_s,
           "reps": args.reps, "latency_model": model, "members": rows, "measured_on": "ray-serve deployment",
           "command": " ".join(["bench/serve_profile.py"] + (argv if argv is not None else sys.argv[1:]))}
    path = write_json(args.out, doc)
    if args.profile_out:
        import json

        Path(args.profile_out).write_text(json.dumps(doc, indent=1))
        print(f"wrote the service profile {args.profile_out} (`holmes compose` reads it by default)")
    print(f"\n{'member':28s} {'inproc b64':>10} {'service b64':>11} {'total b64':>9} {'p99 b64':>8} {'total b1':>8}")
    for n, r in rows.items():
        print(f"{n:28s} {float(r['inprocess_ms']['64']):10.1f} {r['service_ms']['64']:11.1f} {r['total_ms']['64']:9.1f} {r['total_p99_ms']['64']:8.1f} {r['total_ms']['1']:8.1f}")
    print(f"overhead outside the fan-out {outside:.1f} ms, per-member fan-out cost {per_member:.1f} ms, p99/p50 {tail:.2f}")
    print(f"wrote {path}")
    _plot(rows, RESULTS / args.out.replace(".json", ".png"))
    return 0


def _plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    x = [float(r["inprocess_ms"]["64"]) for r in rows.values()]
    ax.scatter(x, [r["service_ms"]["64"] for r in rows.values()], label="compute in the replica")
    ax.scatter(x, [r["total_ms"]["64"] for r in rows.values()], label="handle round trip (median)", marker="x")
    lim = max(max(x), max(r["total_ms"]["64"] for r in rows.values())) * 1.1
    ax.plot([0, lim], [0, lim], "k:", lw=1, label="y = x")
    ax.set_xlabel("in-process profile, batch 64 (ms)")
    ax.set_ylabel("on the Serve deployment, batch 64 (ms)")
    ax.set_title("Member service time: profile vs running deployment")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
