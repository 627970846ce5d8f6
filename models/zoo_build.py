"""Profiles and ensemble rows for a registry version, from training results.

Every member, CNN or feature model, gets the same profile::

    {"name", "kind", "version", "params", "macs", "latency_ms": {"1", "8", "64"},
     "cv": {"auroc", "score", "threshold", "fold_thresholds", "tpr", "tnr"},
     "oof": {"records", "prob", "fold", "seed"}, "inputs": {"window_s", "fs_hz", "slots"},
     "config": {...}, "train": {...}, "weights_file", "sha256"}

so the composer can score any subset from the out-of-fold predictions without re-running a model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import FS_HZ, SLOTS
from .profile import profile_member
from .zoo_eval import CNN_ENSEMBLE, ZOO_ENSEMBLE, cv_summary, ensemble_prob


def member_profile(member, oof_records: Sequence[str], oof_prob, folds, labels, seed: int, config: dict, inputs_slots,
                   train: dict | None = None, latency_repeats: int = 15) -> dict:
    prof = profile_member(member, repeats=latency_repeats)
    prob = np.asarray(oof_prob, dtype=np.float64)
    return {
        "name": member.name,
        "kind": member.kind,
        **prof,
        "cv": cv_summary(labels, prob, folds),
        "oof": {"records": list(oof_records), "prob": [round(float(p), 6) for p in prob], "fold": [int(f) for f in folds],
                "label": [int(v) for v in labels], "seed": int(seed)},
        "inputs": {"window_s": float(getattr(member, "window_s", 16.0)), "fs_hz": int(getattr(member, "fs_hz", FS_HZ)),
                   "slots": [SLOTS[i] for i in inputs_slots]},
        "config": config,
        "train": train or {},
    }


def cnn_entries(results: list[dict], records: Sequence[str], labels, folds, seed: int, progress: bool = True,
                latency_repeats: int = 15) -> list[dict]:
    """Registry entries for the CNN results of ``models.train_cnn.train_zoo`` (profiles measured here)."""
    it = results
    if progress:
        from tqdm import tqdm

        it = tqdm(results, desc="profile", unit="model")
    out = []
    for r in it:
        cfg = r["config"]
        prof = member_profile(r["member"], records, r["oof_prob"], folds, labels, seed, cfg.to_dict(), cfg.slots, r["train"],
                              latency_repeats)
        out.append({"member": r["member"], "profile": prof})
    return out


def subnet_entries(result: dict, records: Sequence[str], labels, folds, seed: int, progress: bool = True,
                   latency_repeats: int = 15) -> list[dict]:
    """Registry entries for every subnet of a trained supernet (``models.train_supernet.train_supernet``).

    Each subnet is a member of its own (profile, out-of-fold predictions, latency) over one shared weights file."""
    from .subnet import SubnetMember

    net = result["supernet"]
    it = net.subnets
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="profile subnets", unit="subnet")
    out = []
    for sub in it:
        member = SubnetMember(net, sub)
        config = {"supernet": net.cfg.to_dict(), "subnet": sub.to_dict()}
        prof = member_profile(member, records, result["oof_prob"][sub.name], folds, labels, seed, config, net.cfg.slots,
                              result["train"], latency_repeats)
        out.append({"member": member, "profile": prof})
    return out


def aligned_oof(profiles: Sequence[dict]) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(records, labels, folds, {name: prob}) over the records every profile has, in the first one's order."""
    if not profiles:
        return [], np.zeros(0), np.zeros(0), {}
    common = set(profiles[0]["oof"]["records"])
    for p in profiles[1:]:
        common &= set(p["oof"]["records"])
    records = [r for r in profiles[0]["oof"]["records"] if r in common]
    first = profiles[0]["oof"]
    pos0 = {r: i for i, r in enumerate(first["records"])}
    labels = np.array([first["label"][pos0[r]] for r in records])
    folds = np.array([first["fold"][pos0[r]] for r in records])
    probs = {}
    for p in profiles:
        pos = {r: i for i, r in enumerate(p["oof"]["records"])}
        probs[p["name"]] = np.array([p["oof"]["prob"][pos[r]] for r in records], dtype=np.float64)
    return records, labels, folds, probs


def ensemble_rows(profiles: Sequence[dict]) -> dict:
    """CV summaries of the mean-probability ensembles named in ``models.zoo_eval`` from the members' OOF."""
    cnn = [p for p in profiles if p["kind"] == "cnn"]
    feat = [p for p in profiles if p["kind"] == "features"]
    if not cnn:
        return {}
    records, labels, folds, probs = aligned_oof(list(profiles))
    rows = {}
    cnn_p = ensemble_prob(probs[p["name"]] for p in cnn)
    rows[CNN_ENSEMBLE] = {"members": [p["name"] for p in cnn], "cv": cv_summary(labels, cnn_p, folds), "n_records": len(records),
                          "params": sum(p["params"] for p in cnn), "macs": sum(p["macs"] for p in cnn),
                          "latency_ms": {b: round(sum(p["latency_ms"][b] for p in cnn), 4) for b in cnn[0]["latency_ms"]}}
    if feat:
        zoo_p = ensemble_prob([cnn_p] + [probs[p["name"]] for p in feat])
        members = cnn + feat
        rows[ZOO_ENSEMBLE] = {"members": [p["name"] for p in members], "cv": cv_summary(labels, zoo_p, folds),
                              "n_records": len(records), "params": sum(p["params"] for p in members),
                              "macs": sum(p["macs"] for p in members),
                              "latency_ms": {b: round(sum(p["latency_ms"].get(b, 0.0) for p in members), 4) for b in cnn[0]["latency_ms"]},
                              "rule": "mean of the cnn-ensemble probability and each feature model's probability"}
    return rows
