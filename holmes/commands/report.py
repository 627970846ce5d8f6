"""``holmes report``: the latency/accuracy trade-off report (index.html, report.md, PNGs) from what exists.

    holmes report [--out-dir out/report] [--registry PATH] [--data DIR] [--beds 64]
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="write the trade-off report (HTML, Markdown, PNGs) from the registry, cascade and benchmarks")
    p.add_argument("--out-dir", default="out/report")
    p.add_argument("--registry", help="registry folder (default: $HOLMES_REGISTRY or artifacts/registry)")
    p.add_argument("--data", help="data folder for the risk curves (default: $HOLMES_DATA, cache, ../shared/data/cinc2015)")
    p.add_argument("--beds", type=int, default=64, help="load the plan rows are composed for")
    p.set_defaults(func=run)


def run(args) -> int:
    from holmes.report import build
    from models.errors import InvalidFieldError

    if args.beds < 1:
        raise InvalidFieldError("--beds", "must be >= 1", args.beds)
    index = build(args.out_dir, args.registry, args.data, args.beds)
    print(f"wrote {index} and {index.parent / 'report.md'} (figures beside them)")
    return 0
