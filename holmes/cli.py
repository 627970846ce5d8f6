"""The ``holmes`` command line: the composition root that wires every package together.

Each sub-command lives in ``holmes/commands/<name>.py`` and exposes ``register(subparsers)``; it imports
the packages it needs lazily so ``holmes --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

# One module per command group; add yours here.
COMMAND_MODULES = [
    "holmes.commands.data",
    "holmes.commands.evaluate",
    "holmes.commands.train",
    "holmes.commands.zoo",
    "holmes.commands.stream",
    "holmes.commands.serve",
    "holmes.commands.compose",
    "holmes.commands.cascade",
    "holmes.commands.demo",
    "holmes.commands.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holmes", description="HOLMES-ICU: real-time ICU alarm verdicts and risk scores")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in COMMAND_MODULES:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from models.errors import HolmesInputError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        rc = args.func(args)
    except HolmesInputError as e:
        print(f"holmes: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
