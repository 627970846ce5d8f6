"""``holmes zoo``: inspect the model registry.

    holmes zoo list   [--registry PATH] [--version vNNNN] [--json PATH]   one row per member + ensemble rows
    holmes zoo verify [--registry PATH] [--version vNNNN]                  check every checksum, load every member
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("zoo", help="list or verify the trained model zoo (registry)")
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    sub.required = True
    for name, func, text in (("list", _list, "print the zoo table"), ("verify", _verify, "verify checksums and load every member")):
        q = sub.add_parser(name, help=text)
        q.add_argument("--registry", help="registry folder (default: $HOLMES_REGISTRY or artifacts/registry)")
        q.add_argument("--version", help="registry version (default: LATEST)")
        if name == "list":
            q.add_argument("--json", help="also write the rows as JSON to this path")
        q.set_defaults(func=func)


def table_rows(reg, version: str | None = None) -> list[dict]:
    """One dict per member and per ensemble row: name, kind, params, macs, latency b1/b8/b64, CV AUROC/score."""
    rows = []
    for p in reg.profiles(version):
        rows.append({"name": p["name"], "kind": p["kind"], "params": p["params"], "macs": p["macs"],
                     "latency_ms": p["latency_ms"], "auroc": p["cv"]["auroc"], "score": p["cv"]["score"],
                     "threshold": p["cv"]["threshold"]})
    for name, e in reg.ensembles(version).items():
        rows.append({"name": name, "kind": "ensemble", "params": e["params"], "macs": e["macs"], "latency_ms": e["latency_ms"],
                     "auroc": e["cv"]["auroc"], "score": e["cv"]["score"], "threshold": e["cv"]["threshold"],
                     "members": len(e["members"])})
    return rows


def format_table(rows: list[dict]) -> str:
    head = f"{'name':<26} {'kind':<9} {'params':>8} {'MMACs':>7} {'b1 ms':>7} {'b64 ms':>8} {'AUROC':>6} {'score':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lat = r["latency_ms"]
        lines.append(f"{r['name']:<26} {r['kind']:<9} {r['params']:>8,d} {r['macs'] / 1e6:>7.2f} {lat['1']:>7.2f} {lat['64']:>8.2f} "
                     f"{r['auroc']:>6.3f} {r['score']:>6.1f}")
    return "\n".join(lines)


def print_table(reg, version: str | None = None) -> None:
    v = version or reg.latest()
    idx = reg.index(v)
    print(f"registry {reg.path} version {v} (created {idx.get('created')}, {len(idx['members'])} members; "
          f"CV: {idx.get('cv', {}).get('n_splits', '?')} folds, seed {idx.get('cv', {}).get('seed', '?')}; "
          f"latency: one thread, median, preprocessing included)")
    print(format_table(table_rows(reg, v)))


def _list(args) -> int:
    import json

    from models.registry import Registry

    reg = Registry(args.registry)
    print_table(reg, args.version)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"version": args.version or reg.latest(), "rows": table_rows(reg, args.version)}, f, indent=1)
    return 0


def _verify(args) -> int:
    from models.registry import Registry, RegistryIntegrityError

    reg = Registry(args.registry)
    v = args.version or reg.latest()
    bad = 0
    for name in reg.members(v):
        try:
            reg.load(name, version=v)
            print(f"ok   {v}/{name}")
        except RegistryIntegrityError as e:
            bad += 1
            print(f"FAIL {v}/{name}: {e}")
    print(f"{len(reg.members(v)) - bad} members verified, {bad} refused")
    return 1 if bad else 0
