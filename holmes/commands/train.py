"""``holmes train``: cross-validate and refit the model zoo, write a new registry version.

    holmes train [--data DIR] [--registry PATH] [--tiny] [--only cnn|features] [--workers N] [--staging DIR] [--pos-weight W]

CNN members: out-of-fold predictions on ``models.data.cv_folds`` (5 folds, --seed), then a refit on every
record; feature models (when ``models.feature_models`` is installed) the same way. Each member is profiled
(params, MACs, latency at batch 1/8/64 on one thread). With ``--only``, the members of the other kind are
carried over from the latest version, so the registry stays one zoo. Nothing is overwritten: the new version
is a new folder and LATEST moves to it when it is complete.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the model zoo and write a new registry version")
    p.add_argument("--data", help="CinC-2015-style folder (default: $HOLMES_DATA, cache, ../shared/data/cinc2015)")
    p.add_argument("--registry", help="registry folder (default: $HOLMES_REGISTRY or artifacts/registry)")
    p.add_argument("--tiny", action="store_true", help="CI configuration: 60 records, 3 small CNNs, 3 epochs (~1-2 min)")
    p.add_argument("--only", choices=("cnn", "features", "supernet"),
                   help="train one kind; the others are carried over from LATEST (the supernet is trained only this way)")
    p.add_argument("--supernet-epochs", type=int, help="override the supernet's DEpS schedule length (default 24)")
    p.add_argument("--workers", type=int, default=2, help="training processes (one torch thread each)")
    p.add_argument("--staging", help="folder for per-fit results; reuse it to resume an interrupted run")
    p.add_argument("--seed", type=int, default=0, help="CV fold seed (the folds every model family shares)")
    p.add_argument("--max-epochs", type=int, help="override the CNN epoch cap")
    p.add_argument("--pos-weight", type=float, help="CNN loss weight of a true alarm (default 5, the challenge's cost of a miss)")
    p.set_defaults(func=run)


def run(args) -> int:
    import tempfile
    from dataclasses import replace

    from models.data import cv_folds, load_dataset, resolve_data_dir
    from models.errors import InvalidFieldError
    from models.registry import Registry
    from models.zoo_build import ensemble_rows

    if args.workers < 1:
        raise InvalidFieldError("--workers", "must be >= 1", args.workers)
    t0 = time.perf_counter()
    data_dir = resolve_data_dir(args.data)
    records, skipped = load_dataset(data_dir, progress=True)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    records = [r for r in records if r.label in (0, 1)]
    if args.tiny:
        records = records[::5][:60]
    if len(records) < 10:
        raise InvalidFieldError("--data", "must hold at least 10 labelled, readable records", len(records))
    folds = cv_folds([r.info for r in records], n_splits=5, seed=args.seed)
    names = [r.name for r in records]
    labels = [int(r.label) for r in records]
    reg = Registry(args.registry)
    entries: list[dict] = []
    timings: dict[str, float] = {}

    if args.only in (None, "cnn"):
        from models.segments import build_cache
        from models.train_cnn import TrainConfig, train_zoo, zoo_configs, zoo_wall_s
        from models.zoo_build import cnn_entries

        tcfg = TrainConfig(max_epochs=3, min_epochs=1, patience=2) if args.tiny else TrainConfig()
        if args.max_epochs:
            tcfg = replace(tcfg, max_epochs=args.max_epochs)
        if args.pos_weight is not None:
            if not args.pos_weight > 0:
                raise InvalidFieldError("--pos-weight", "must be > 0", args.pos_weight)
            tcfg = replace(tcfg, pos_weight=args.pos_weight)
        t = time.perf_counter()
        cache = build_cache(records, progress=True)
        staging = args.staging or tempfile.mkdtemp(prefix="holmes-train-")
        results = train_zoo(zoo_configs(tiny=args.tiny), cache, folds, staging, tcfg, workers=args.workers)
        timings["cnn_train_s"] = round(time.perf_counter() - t, 1)
        timings["cnn_staging_wall_s"] = zoo_wall_s(staging)  # all runs that trained into this staging folder
        entries += cnn_entries(results, names, labels, folds, args.seed, latency_repeats=5 if args.tiny else 15)
        if not args.staging:  # a temporary staging folder is not needed once the members are in memory
            import shutil

            shutil.rmtree(staging, ignore_errors=True)

    if args.only == "supernet":
        from models.segments import build_cache
        from models.supernet import SupernetConfig
        from models.train_supernet import SupernetTrainConfig, train_supernet
        from models.zoo_build import subnet_entries

        tcfg = SupernetTrainConfig(epochs=4, ramp_epochs=1, calib_windows=64) if args.tiny else SupernetTrainConfig()
        if args.supernet_epochs:
            tcfg = replace(tcfg, epochs=args.supernet_epochs)
        t = time.perf_counter()
        cache = build_cache(records, progress=True)
        staging = args.staging or tempfile.mkdtemp(prefix="holmes-supernet-")
        result = train_supernet(SupernetConfig(), cache, folds, staging, tcfg, workers=args.workers)
        timings["supernet_train_s"] = round(time.perf_counter() - t, 1)
        timings["supernet_staging_wall_s"] = result["train"]["wall_s"]
        entries += subnet_entries(result, names, labels, folds, args.seed, latency_repeats=5 if args.tiny else 15)
        if not args.staging:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)

    if args.only in (None, "features"):
        from models.zoo_features import feature_entries, features_available

        if features_available():
            t = time.perf_counter()
            entries += feature_entries(records, folds, args.seed, tiny=args.tiny)
            timings["features_train_s"] = round(time.perf_counter() - t, 1)
        elif args.only == "features":
            raise InvalidFieldError("--only", "features needs models.feature_models, which is not installed", "features")
        else:
            log.warning("models.feature_models is not available yet: the registry version holds CNNs only")

    profiles = [e["profile"] for e in entries]
    # what this run did not train is carried over from LATEST (a full run does not train the supernet: its
    # subnets stay until `--only supernet` retrains them)
    trained = {"cnn", "features"} if args.only is None else {{"supernet": "subnet"}.get(args.only, args.only)}
    carried = False
    if reg.versions():
        latest = reg.latest()
        for p in reg.profiles(latest):
            if p["kind"] not in trained:
                entries.append({"copy_from": (latest, p["name"])})
                profiles.append(p)
                carried = True
                if set(p["oof"]["records"]) != set(names):
                    log.warning("%s carried over from %s was cross-validated on other records; retrain it", p["name"], latest)
    timings["total_s"] = round(time.perf_counter() - t0, 1)
    if carried:  # the carried-over members' training times stay on record
        timings = {**{k: v for k, v in reg.index(reg.latest()).get("timings", {}).items() if k != "total_s"}, **timings}
    meta = {"data": {"dir": str(data_dir), "n_records": len(records), "skipped": [n for n, _ in skipped], "tiny": bool(args.tiny)},
            "cv": {"n_splits": 5, "seed": args.seed}, "timings": timings}
    version = reg.write_version(entries, ensemble_rows(profiles), meta)
    print(f"registry {reg.path}: wrote {version} ({len(entries)} members) in {timings['total_s']:.0f} s")
    from holmes.commands.zoo import print_table

    print_table(reg, version)
    return 0
