"""Memory of one replica serving every subnet against separate models, and the cost of switching subnets.

    .venv/bin/python bench/supernet_memory.py [--registry PATH] [--version vNNNN]

Loads the registry's subnet members (one shared supernet) and reports:

    all_subnets_mb      weights + per-subnet BN statistics of the one supernet every subnet member reads
    largest_subnet_mb   the largest subnet extracted on its own (``models.supernet.extract``)
    separate_models_mb  all K subnets extracted and held as separate models
    ratio               all_subnets_mb / largest_subnet_mb (goal <= 1.2)
    switch_us_median    switching a request to its subnet (its kept views of the weights and statistics), median in us;
                        building those views from scratch is reported too (actuate_from_scratch_us_median)
    weight_copies       tensors a switch copies (0: every view shares the supernet's storage)
    forward_ms          batch 1 forward, same subnet each call vs a different subnet each call (median ms)

Sizes are the bytes of the tensors each arrangement holds (parameters and buffers, each storage once): a few
hundred kB, far below what resident-memory readings of a torch process resolve. Writes
bench/results/supernet_memory.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "supernet_memory.json"

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry", default=str(ROOT / "artifacts" / "registry"))
    ap.add_argument("--version")
    ap.add_argument("--switches", type=int, default=2000)
    args = ap.parse_args()

    import numpy as np
    import torch

    from models.registry import Registry
    from models.subnet import extract, tensor_bytes

    torch.set_num_threads(1)
    reg = Registry(args.registry)
    version = args.version or reg.latest()
    names = [p["name"] for p in reg.profiles(version) if p["kind"] == "subnet"]
    if not names:
        raise SystemExit(f"registry {reg.path} {version} holds no subnet: run `holmes train --only supernet`")
    members = [reg.load(n, version=version) for n in names]
    net = members[0].supernet
    assert all(m.supernet is net for m in members), "subnet members must share one supernet"
    subnets = [m.subnet for m in members]
    largest = max(subnets, key=lambda s: tensor_bytes(extract(net, s)))
    mb = 1 / 2**20
    all_mb = tensor_bytes(net) * mb
    largest_mb = tensor_bytes(extract(net, largest)) * mb
    separate_mb = sum(tensor_bytes(extract(net, s)) for s in subnets) * mb

    storages = {t.untyped_storage().data_ptr() for t in list(net.parameters()) + list(net.buffers())}
    rng = np.random.default_rng(0)
    order = rng.integers(0, len(subnets), args.switches)
    times, build, copies = [], [], 0
    for i in order:  # building a subnet's views from scratch
        t0 = time.perf_counter()
        net.actuate(subnets[i])
        build.append((time.perf_counter() - t0) * 1e6)
    for s in subnets:
        net.plan_for(s)
    for i in order:  # the switch a request pays: its subnet's kept views
        t0 = time.perf_counter()
        net.plan_for(subnets[i])
        times.append((time.perf_counter() - t0) * 1e6)
    for s in subnets:
        copies += sum(v.untyped_storage().data_ptr() not in storages for v in net.weight_views(s))

    x, aux = torch.randn(1, len(net.cfg.slots), 2000), torch.randn(1, net.fc1.in_features - 2 * net.c_last)
    fwd = {"same_subnet": [], "switching": []}
    with torch.inference_mode():
        for _ in range(3):
            for key in fwd:
                for j in range(200):
                    s = subnets[len(subnets) // 2] if key == "same_subnet" else subnets[j % len(subnets)]
                    if key == "switching" and s is not subnets[len(subnets) // 2]:
                        s2 = subnets[len(subnets) // 2]  # same work, but the call before used another subnet
                        net(x, aux, s)
                        s = s2
                    t0 = time.perf_counter()
                    net(x, aux, s)
                    fwd[key].append((time.perf_counter() - t0) * 1e3)
    result = {
        "registry_version": version,
        "k_subnets": len(subnets),
        "largest_subnet": largest.name,
        "all_subnets_mb": round(all_mb, 4),
        "largest_subnet_mb": round(largest_mb, 4),
        "separate_models_mb": round(separate_mb, 4),
        "ratio": round(all_mb / largest_mb, 4),
        "separate_over_all": round(separate_mb / all_mb, 3),
        "switch_us_median": round(statistics.median(times), 2),
        "switch_us_p99": round(float(np.percentile(times, 99)), 2),
        "actuate_from_scratch_us_median": round(statistics.median(build), 1),
        "weight_copies": int(copies),
        "forward_ms_median": {k: round(statistics.median(v), 4) for k, v in fwd.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"{'':<34}{'MB':>10}")
    for k in ("all_subnets_mb", "largest_subnet_mb", "separate_models_mb"):
        print(f"{k:<34}{result[k]:>10.3f}")
    print(f"ratio all / largest {result['ratio']:.3f} (goal <= 1.2); separate / all {result['separate_over_all']:.1f}x")
    print(f"switch {result['switch_us_median']:.2f} us median (p99 {result['switch_us_p99']:.2f}; building a subnet's views "
          f"from scratch {result['actuate_from_scratch_us_median']:.0f} us), weight copies {copies}")
    print(f"forward b1: {result['forward_ms_median']}")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
