"""``holmes data``: find, check and fetch CinC-2015-style record folders.

    holmes data info  [--data DIR]           where the data is, counts per alarm type, records that fail to load
    holmes data fetch [--dest DIR] [--database challenge-2015/training] [--records a103l,...]
                                             download from PhysioNet (needs internet; the default destination is
                                             the local cache that --data resolution looks in)
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

DATABASE = "challenge-2015/training"
_RECORD = re.compile(r"^[A-Za-z0-9_]+$")
_DATABASE = re.compile(r"^[a-z0-9][a-z0-9\-]*(/[A-Za-z0-9_\-]+)*$")


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="find, check and fetch record folders")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    info = sub.add_parser("info", help="where the data is and what it holds")
    info.add_argument("--data", help="CinC-2015-style folder")
    info.set_defaults(func=run_info)
    fetch = sub.add_parser("fetch", help="download the full training set from PhysioNet (online users)")
    fetch.add_argument("--dest", help="destination folder (default: the local cache)")
    fetch.add_argument("--database", default=DATABASE, help=f"PhysioNet database path (default {DATABASE})")
    fetch.add_argument("--records", help="comma-separated record names (default: all)")
    fetch.add_argument("--overwrite", action="store_true", help="download files that already exist")
    fetch.set_defaults(func=run_fetch)


def run_info(args) -> int:
    from models.data import load_dataset, resolve_data_dir

    d = resolve_data_dir(args.data)
    records, skipped = load_dataset(d)
    print(f"data: {d}")
    print(f"records: {len(records)} loaded, {len(skipped)} skipped")
    counts = Counter((r.alarm_type, r.label) for r in records)
    for t in sorted({r.alarm_type for r in records}):
        print(f"  {t:26s} false {counts[(t, 0)]:4d}  true {counts[(t, 1)]:4d}")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}")
    return 0


def fetch_plan(dest: str | None, database: str, records: str | None) -> tuple[Path, str, list[str] | None]:
    """Validate fetch arguments; returns (destination, database, record list or None for all)."""
    from models.data import CACHE_DATA
    from models.errors import InvalidFieldError

    if not _DATABASE.match(database):
        raise InvalidFieldError("--database", "must be a PhysioNet database path such as challenge-2015/training", database)
    names = None
    if records is not None:
        names = [n.strip() for n in records.split(",") if n.strip()]
        if not names:
            raise InvalidFieldError("--records", "must name at least one record", records)
        for n in names:
            if not _RECORD.match(n):
                raise InvalidFieldError("--records", "must hold record names of letters, digits and _", n)
    out = Path(dest).expanduser() if dest else CACHE_DATA
    if out.exists() and not out.is_dir():
        raise InvalidFieldError("--dest", "must be a folder", str(out))
    return out, database, names


def run_fetch(args) -> int:
    import wfdb

    dest, database, names = fetch_plan(args.dest, args.database, args.records)
    dest.mkdir(parents=True, exist_ok=True)
    print(f"downloading {database} into {dest} ...")
    try:
        wfdb.dl_database(database, str(dest), records=names if names else "all", overwrite=args.overwrite)
    except Exception as e:  # network failures come as many types (requests, urllib3, OSError)
        print(f"holmes: error: download of {database} failed ({type(e).__name__}: {e}); is PhysioNet reachable?")
        return 3
    recs = sorted(p.stem for p in dest.glob("*.hea"))
    if not (dest / "RECORDS").is_file():
        (dest / "RECORDS").write_text("\n".join(recs) + "\n")
    print(f"{len(recs)} records in {dest}; use --data {dest} or HOLMES_DATA={dest}")
    return 0
