"""Training the supernet with the DEpS schedule, cross-validated like the zoo (same folds, same cost weighting).

Schedule (DEpS, delayed epsilon-shrinking): for the first ``phase1_frac`` of the epochs only the largest
subnet trains; after that every step trains the sandwich: the largest subnet on the labels, then the smallest
and ``n_random`` random subnets on a mix of the labels and the largest's (detached) prediction (in-place
distillation), their loss weight ramped from 0 to 1 over ``ramp_epochs``. The learning rate follows one
cosine over the whole schedule. Loss, augmentation and batch size are the zoo's (``models.train_cnn``): a
missed true alarm weighs ``pos_weight`` = 5, windows end anywhere in the last 8 s before the alarm.

Early stopping: in a CV fold, an inner fifth of the training records is held out; from the end of the ramp on,
each epoch recalibrates the probe subnets (smallest, middle, largest) and keeps the weights with the lowest
mean validation loss. The refit on all records runs the same schedule and stops at the median best epoch
of the folds. After training, every subnet's batch-norm statistics are recalibrated on training windows.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import train_cnn
from .segments import SegmentCache
from .supernet import SubnetConfig, Supernet, SupernetConfig
from .train_cnn import _batch, _inner_split, _weighted_bce


@dataclass(frozen=True)
class SupernetTrainConfig:
    epochs: int = 24  # chosen on fold 0's inner validation loss among 12, 16, 24, 48
    phase1_frac: float = 0.54  # largest alone for ~145 of 270 epochs in the public recipe
    ramp_epochs: int = 3
    n_random: int = 2
    kd_weight: float = 0.5  # share of the small subnets' loss that is distillation from the largest
    batch_size: int = 32
    windows_per_record: int = 2
    lr: float = 2e-3
    weight_decay: float = 1e-3
    pos_weight: float = 5.0
    amp_jitter: float = 0.1
    val_frac: float = 0.2
    val_shifts: int = 3
    calib_windows: int = 512
    seed: int = 0

    @property
    def phase1_epochs(self) -> int:
        return max(1, int(round(self.phase1_frac * self.epochs)))


def _calib_batches(cache: SegmentCache, idx: np.ndarray, slots, n: int, rng, batch: int = 128):
    """``n`` training windows (records drawn from ``idx``, shifts at random) in batches of (x, aux)."""
    take = rng.choice(idx, size=n, replace=len(idx) < n)
    shifts = rng.integers(0, len(cache.shifts_s), n)
    return [_batch(cache, take[s : s + batch], shifts[s : s + batch], slots) for s in range(0, n, batch)]


def recalibrate_all(net: Supernet, cache: SegmentCache, idx: np.ndarray, n_windows: int, seed: int,
                    subnets: Sequence[SubnetConfig] | None = None) -> None:
    rng = np.random.default_rng(seed)
    batches = _calib_batches(cache, np.asarray(idx), net.cfg.slots, n_windows, rng)
    for s in subnets or net.subnets:
        net.recalibrate(s, batches)


def probes(net: Supernet) -> list[SubnetConfig]:
    s = net.subnets
    return [s[0], s[len(s) // 2], s[-1]]


def fit_supernet(cfg: SupernetConfig, tcfg: SupernetTrainConfig, cache: SegmentCache, train_idx: Sequence[int],
                 stop_epoch: int | None = None, seed: int = 0, progress: bool = False) -> tuple[Supernet, dict]:
    """Train one supernet on records ``train_idx``. ``stop_epoch=None``: early stopping on an inner split."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if stop_epoch is None:
        tr_pos, va_pos = _inner_split(cache.labels[train_idx], tcfg.val_frac, rng)
        tr, va, last = train_idx[tr_pos], train_idx[va_pos], tcfg.epochs
    else:
        tr, va, last = train_idx, np.zeros(0, np.int64), int(stop_epoch)
    net = Supernet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    steps_per_epoch = math.ceil(len(tr) * tcfg.windows_per_record / tcfg.batch_size)
    total_steps = steps_per_epoch * tcfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total_steps) / total_steps)))
    largest, smallest, others = net.subnets[-1], net.subnets[0], net.subnets[1:-1]
    n_shift = len(cache.shifts_s)
    first_check = tcfg.phase1_epochs + tcfg.ramp_epochs
    best, history = (float("inf"), 0, None), []
    epochs = range(1, last + 1)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc="supernet epochs", unit="ep")
    for epoch in epochs:
        net.train()
        shrink = epoch > tcfg.phase1_epochs
        ramp = min(1.0, (epoch - tcfg.phase1_epochs) / max(tcfg.ramp_epochs, 1)) if shrink else 0.0
        order = np.tile(tr, tcfg.windows_per_record)
        rng.shuffle(order)
        for s in range(0, len(order), tcfg.batch_size):
            b = order[s : s + tcfg.batch_size]
            if len(b) < 2:  # batch norm needs two samples
                continue
            x, aux = _batch(cache, b, rng.integers(0, n_shift, len(b)), cfg.slots, rng, tcfg.amp_jitter)
            y = torch.from_numpy(cache.labels[b].astype(np.float32))
            logit_l = net(x, aux, largest)
            loss = _weighted_bce(logit_l, y, tcfg.pos_weight)
            if shrink:
                teacher = torch.sigmoid(logit_l.detach())
                picks = [smallest] + [others[i] for i in rng.choice(len(others), tcfg.n_random, replace=False)]
                for sub in picks:
                    lg = net(x, aux, sub)
                    kd = torch.nn.functional.binary_cross_entropy_with_logits(lg, teacher)
                    loss = loss + ramp * ((1 - tcfg.kd_weight) * _weighted_bce(lg, y, tcfg.pos_weight) + tcfg.kd_weight * kd)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if len(va) == 0 or epoch < first_check:
            continue
        vl = _val_loss(net, cache, tr, va, tcfg, seed + epoch)
        history.append(round(vl, 5))
        if vl < best[0] - 1e-4:
            best = (vl, epoch, {k: v.detach().clone() for k, v in net.state_dict().items()})
    if best[2] is not None:
        net.load_state_dict(best[2])
    recalibrate_all(net, cache, tr, tcfg.calib_windows, seed)
    net.eval()
    return net, {"best_epoch": best[1] if best[2] is not None else last, "val_loss": history}


def _val_loss(net: Supernet, cache: SegmentCache, tr, va, tcfg: SupernetTrainConfig, seed: int) -> float:
    """Mean weighted loss of the probe subnets on the validation records (windows ending 0, 1, 2 s before)."""
    recalibrate_all(net, cache, tr, 256, seed, probes(net))
    net.eval()
    losses = []
    with torch.inference_mode():
        for sub in probes(net):
            for k in range(min(tcfg.val_shifts, len(cache.shifts_s))):
                x, aux = _batch(cache, va, np.full(len(va), k), net.cfg.slots)
                y = torch.from_numpy(cache.labels[va].astype(np.float32))
                losses.append(float(_weighted_bce(net(x, aux, sub), y, tcfg.pos_weight)))
    return float(np.mean(losses))


def predict_subnets(net: Supernet, cache: SegmentCache, idx: Sequence[int], batch: int = 128) -> dict[str, np.ndarray]:
    """P(true alarm) of every subnet on the windows ending at the alarm of records ``idx``."""
    idx = np.asarray(idx, dtype=np.int64)
    net.eval()
    out = {s.name: [] for s in net.subnets}
    with torch.inference_mode():
        for s in range(0, len(idx), batch):
            b = idx[s : s + batch]
            x, aux = _batch(cache, b, np.zeros(len(b), np.int64), net.cfg.slots)
            for sub in net.subnets:
                out[sub.name].append(torch.sigmoid(net(x, aux, sub)).double().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


# ---- cross-validation and refit --------------------------------------------------------------------------
def _job(args) -> dict:
    cfg_d, tcfg_d, fold, train_idx, test_idx, stop_epoch, seed = args
    cfg, tcfg = SupernetConfig.from_dict(cfg_d), SupernetTrainConfig(**tcfg_d)
    cache = train_cnn._CACHE
    t0 = time.perf_counter()
    net, info = fit_supernet(cfg, tcfg, cache, train_idx, stop_epoch=stop_epoch, seed=seed)
    out = {"name": "supernet", "fold": fold, "train_s": time.perf_counter() - t0, **info}
    if test_idx is not None:
        out["records"] = [cache.names[i] for i in test_idx]
        out["prob"] = {k: v.tolist() for k, v in predict_subnets(net, cache, test_idx).items()}
    else:
        out["state"] = {k: v.numpy() for k, v in net.state_dict().items()}
    return out


def train_supernet(cfg: SupernetConfig, cache: SegmentCache, folds: np.ndarray, staging: str | os.PathLike,
                   tcfg: SupernetTrainConfig = SupernetTrainConfig(), workers: int = 2, progress: bool = True) -> dict:
    """CV the supernet on ``folds`` (out-of-fold predictions of every subnet), then refit on all records.

    Returns {"supernet" (refit), "oof_prob": {subnet name: prob in cache order}, "train": {...}}; fold
    results are staged under ``staging`` so a rerun resumes.
    """
    staging = Path(staging)
    (staging / "folds").mkdir(parents=True, exist_ok=True)
    folds = np.asarray(folds)
    n_splits = int(folds.max()) + 1
    train_cnn._CACHE = cache

    def fold_path(k):
        return staging / "folds" / f"supernet.fold{k}.json"

    jobs = [(cfg.to_dict(), asdict(tcfg), k, np.flatnonzero(folds != k), np.flatnonzero(folds == k), None, tcfg.seed * 1000 + k)
            for k in range(n_splits) if not fold_path(k).is_file()]
    t = time.perf_counter()
    train_cnn._run(jobs, workers, 1, progress, "supernet cv fits",
                   lambda r: fold_path(r["fold"]).write_text(json.dumps(r)), job=_job)
    train_cnn._add_wall(staging, "cv_s", time.perf_counter() - t, len(jobs))
    fold_res = [json.loads(fold_path(k).read_text()) for k in range(n_splits)]
    stop = max(tcfg.phase1_epochs + tcfg.ramp_epochs, int(np.median([f["best_epoch"] for f in fold_res])))
    refit = staging / "supernet.pt"
    if not refit.is_file():
        t = time.perf_counter()
        r = _job((cfg.to_dict(), asdict(tcfg), None, np.arange(len(cache)), None, stop, tcfg.seed * 1000 + 99))
        torch.save({"state": {k: torch.from_numpy(v) for k, v in r["state"].items()}, "train_s": r["train_s"]}, str(refit) + ".tmp")
        Path(str(refit) + ".tmp").replace(refit)
        train_cnn._add_wall(staging, "refit_s", time.perf_counter() - t, 1)
    saved = torch.load(refit, weights_only=True)
    net = Supernet(cfg)
    net.load_state_dict(saved["state"])
    net.eval()
    oof = train_cnn.oof_from_folds(cache.names, [(f["records"], f["prob"]) for f in fold_res], staging)
    return {"supernet": net, "oof_prob": oof, "train": {
        "fold_train_s": [round(f["train_s"], 1) for f in fold_res], "refit_train_s": round(saved["train_s"], 1),
        "best_epochs": [f["best_epoch"] for f in fold_res], "refit_epochs": stop, "train_config": asdict(tcfg),
        "wall_s": train_cnn.zoo_wall_s(staging)}}
