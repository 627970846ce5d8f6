"""Training the CNN zoo: record-grouped CV (out-of-fold predictions) and a refit on all records.

One fit: AdamW on a class-weighted BCE (a true alarm weighs ``pos_weight`` = 5, the challenge's cost of a
missed true alarm), window-shift augmentation (each epoch draws, per record, windows ending anywhere in the
last ``max_shift_s`` seconds before the alarm) and a small amplitude jitter, early stopping on an inner
split of the training records (validation loss on the windows ending at 0, 1 and 2 s before the alarm).
The refit on all records trains for the median best epoch count of the CV folds.

Every (member, fold) fit is an independent job; ``train_zoo`` runs them on a process pool (one torch
thread each), writes each result to a staging folder as soon as it exists (a rerun resumes), and returns
per-member results for ``models.registry``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .cnn import CNNConfig, CNNMember, ResNet1d
from .segments import SegmentCache
from .zoo_eval import cv_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = 24
    min_epochs: int = 4
    patience: int = 5
    batch_size: int = 32
    windows_per_record: int = 2  # augmented windows per training record per epoch
    lr: float = 2e-3
    weight_decay: float = 1e-3
    pos_weight: float = 5.0
    val_frac: float = 0.2
    val_shifts: int = 3
    amp_jitter: float = 0.1
    seed: int = 0


def zoo_configs(tiny: bool = False, window_s: float = 16.0) -> list[CNNConfig]:
    """The zoo grid: 3 input groups x widths x depths (24 members), or 3 small ones for --tiny."""
    if tiny:
        return [CNNConfig(inputs=i, width=8, depth=2, window_s=window_s) for i in ("ecg", "ecgpulse", "all")]
    return [
        CNNConfig(inputs=i, width=w, depth=d, window_s=window_s)
        for i in ("ecg", "ecgpulse", "all")
        for w in (8, 16, 24, 32)
        for d in (2, 4)
    ]


def _batch(cache: SegmentCache, idx: np.ndarray, shift_idx: np.ndarray, slots, rng=None, jitter: float = 0.0):
    x = cache.x[idx, shift_idx][:, list(slots)]
    if rng is not None and jitter > 0:
        x = x * rng.uniform(1 - jitter, 1 + jitter, size=(len(idx), x.shape[1], 1)).astype(np.float32)
    onehot = np.eye(5, dtype=np.float32)[cache.type_idx[idx]]
    pres = cache.present[idx, shift_idx][:, list(slots)].astype(np.float32)
    amp = cache.amp[idx, shift_idx][:, list(slots)]
    aux = np.concatenate([onehot, pres, amp], axis=1)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(aux, dtype=np.float32))


def predict_cache(net: ResNet1d, cache: SegmentCache, idx: Sequence[int], slots, shift_index: int = 0, batch: int = 128) -> np.ndarray:
    """P(true alarm) for records ``idx`` of the cache, on the window ``shift_index`` (0 = ending at the alarm)."""
    idx = np.asarray(idx, dtype=np.int64)
    net.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(idx), batch):
            b = idx[s : s + batch]
            x, aux = _batch(cache, b, np.full(len(b), shift_index), slots)
            out.append(torch.sigmoid(net(x, aux)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _weighted_bce(logits, y, pos_weight: float):
    w = torch.where(y > 0.5, torch.full_like(y, pos_weight), torch.ones_like(y))
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=w, reduction="sum") / w.sum()


def _inner_split(labels: np.ndarray, frac: float, rng) -> tuple[np.ndarray, np.ndarray]:
    tr, va = [], []
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = max(1, int(round(frac * len(idx)))) if len(idx) > 1 else 0
        va.extend(idx[:k])
        tr.extend(idx[k:])
    return np.sort(np.array(tr, dtype=np.int64)), np.sort(np.array(va, dtype=np.int64))


def fit_one(cfg: CNNConfig, tcfg: TrainConfig, cache: SegmentCache, train_idx: Sequence[int], epochs: int | None = None,
            seed: int = 0) -> tuple[ResNet1d, dict]:
    """Train one network on records ``train_idx`` of the cache.

    With ``epochs=None`` an inner split is held out and the best epoch by validation loss is kept (early
    stopping); otherwise exactly ``epochs`` epochs on all of ``train_idx``.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    if epochs is None:
        tr_pos, va_pos = _inner_split(cache.labels[train_idx], tcfg.val_frac, rng)
        tr, va = train_idx[tr_pos], train_idx[va_pos]
        max_epochs = tcfg.max_epochs
    else:
        tr, va, max_epochs = train_idx, np.zeros(0, np.int64), int(epochs)
    net = ResNet1d(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    n_shift = len(cache.shifts_s)
    best = (float("inf"), 0, None)
    history = []
    for epoch in range(1, max_epochs + 1):
        net.train()
        order = np.tile(tr, tcfg.windows_per_record)
        rng.shuffle(order)
        for s in range(0, len(order), tcfg.batch_size):
            b = order[s : s + tcfg.batch_size]
            if len(b) < 2:  # BatchNorm needs two samples
                continue
            x, aux = _batch(cache, b, rng.integers(0, n_shift, len(b)), cfg.slots, rng, tcfg.amp_jitter)
            y = torch.from_numpy(cache.labels[b].astype(np.float32))
            loss = _weighted_bce(net(x, aux), y, tcfg.pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if len(va) == 0:
            continue
        net.eval()
        with torch.inference_mode():
            losses = []
            for k in range(min(tcfg.val_shifts, n_shift)):
                x, aux = _batch(cache, va, np.full(len(va), k), cfg.slots)
                y = torch.from_numpy(cache.labels[va].astype(np.float32))
                losses.append(float(_weighted_bce(net(x, aux), y, tcfg.pos_weight)))
        vl = float(np.mean(losses))
        history.append(round(vl, 5))
        if vl < best[0] - 1e-4 or epoch <= tcfg.min_epochs and best[2] is None:
            best = (vl, epoch, {k: v.detach().clone() for k, v in net.state_dict().items()})
        elif epoch - best[1] >= tcfg.patience and epoch >= tcfg.min_epochs:
            break
    if best[2] is not None:
        net.load_state_dict(best[2])
    net.eval()
    return net, {"best_epoch": best[1] if best[2] is not None else max_epochs, "val_loss": history}


# ---- the zoo: (member, fold) jobs on a process pool --------------------------------------------------------

_CACHE: SegmentCache | None = None


def _init_worker(cache: SegmentCache | None, threads: int) -> None:
    global _CACHE
    if cache is not None:
        _CACHE = cache
    torch.set_num_threads(threads)


def _job(args) -> dict:
    cfg_d, tcfg_d, fold, train_idx, test_idx, epochs, seed = args
    cfg, tcfg = CNNConfig.from_dict(cfg_d), TrainConfig(**tcfg_d)
    t0 = time.perf_counter()
    net, info = fit_one(cfg, tcfg, _CACHE, train_idx, epochs=epochs, seed=seed)
    out = {"name": cfg.name, "fold": fold, "train_s": time.perf_counter() - t0, **info}
    if test_idx is not None:
        out["records"] = [_CACHE.names[i] for i in test_idx]
        out["prob"] = predict_cache(net, _CACHE, test_idx, cfg.slots).tolist()
    else:
        out["state"] = {k: v.numpy() for k, v in net.state_dict().items()}
    return out


def _member_seed(cfg: CNNConfig, base: int) -> int:
    return base * 1000 + sum(map(ord, cfg.name)) % 997


def train_zoo(configs: Sequence[CNNConfig], cache: SegmentCache, folds: np.ndarray, staging: str | os.PathLike,
              tcfg: TrainConfig = TrainConfig(), workers: int = 2, threads: int = 1, progress: bool = True) -> list[dict]:
    """CV every member on ``folds``, then refit each on all records. Returns one result dict per member:

    {"config", "member" (CNNMember, refit), "oof_prob" (cache order), "folds", "cv", "train": {...}}.
    Fit results are staged under ``staging`` (JSON for folds, .pt for refits) so a rerun resumes.
    """
    global _CACHE
    staging = Path(staging)
    (staging / "folds").mkdir(parents=True, exist_ok=True)
    folds = np.asarray(folds)
    n_splits = int(folds.max()) + 1
    _CACHE = cache
    t_start = time.perf_counter()

    def fold_path(cfg, k):
        return staging / "folds" / f"{cfg.name}.fold{k}.json"

    cost = {c.name: c.width ** 2 * (c.depth + 1) for c in configs}
    order = sorted(configs, key=lambda c: -cost[c.name])  # big first: better load balance
    jobs = []
    for c in order:
        for k in range(n_splits):
            if not fold_path(c, k).is_file():
                tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
                jobs.append((c.to_dict(), asdict(tcfg), k, tr, te, None, _member_seed(c, tcfg.seed) + k))
    t = time.perf_counter()
    _run(jobs, workers, threads, progress, "cv fits",
         lambda r: (staging / "folds" / f"{r['name']}.fold{r['fold']}.json").write_text(json.dumps(r)))
    _add_wall(staging, "cv_s", time.perf_counter() - t, len(jobs))

    fold_res = {c.name: [json.loads(fold_path(c, k).read_text()) for k in range(n_splits)] for c in configs}
    refit_epochs = {n: max(tcfg.min_epochs, int(np.median([f["best_epoch"] for f in fr]))) for n, fr in fold_res.items()}
    jobs = [
        (c.to_dict(), asdict(tcfg), None, np.arange(len(cache)), None, refit_epochs[c.name], _member_seed(c, tcfg.seed) + 99)
        for c in order
        if not (staging / f"{c.name}.pt").is_file()
    ]
    t = time.perf_counter()
    _run(jobs, workers, threads, progress, "refits", lambda r: _save_refit(staging, r))
    _add_wall(staging, "refit_s", time.perf_counter() - t, len(jobs))

    results = []
    for c in configs:
        oof = oof_from_folds(cache.names, [(f["records"], {c.name: f["prob"]}) for f in fold_res[c.name]], staging)[c.name]
        refit = torch.load(staging / f"{c.name}.pt", weights_only=True)
        member = CNNMember.from_state_dict(c, refit["state"])
        results.append({
            "config": c,
            "member": member,
            "oof_prob": oof,
            "cv": cv_summary(cache.labels, oof, folds),
            "train": {
                "fold_train_s": [round(f["train_s"], 2) for f in fold_res[c.name]],
                "refit_train_s": round(refit["train_s"], 2),
                "best_epochs": [f["best_epoch"] for f in fold_res[c.name]],
                "refit_epochs": refit_epochs[c.name],
                "train_config": asdict(tcfg),
            },
        })
    log.info("zoo of %d members trained in %.1f s (this run)", len(configs), time.perf_counter() - t_start)
    return results


def oof_from_folds(names: Sequence[str], folds: Sequence[tuple], staging) -> dict[str, np.ndarray]:
    """{model: out-of-fold probabilities in ``names`` order} from staged folds [(records, {model: probs})];
    refuses folds that do not cover every record."""
    pos = {n: i for i, n in enumerate(names)}
    oof: dict[str, np.ndarray] = {}
    for records, probs in folds:
        where = [pos[n] for n in records]
        for model, p in probs.items():
            oof.setdefault(model, np.full(len(names), np.nan))[where] = p
    short = sorted(m for m, v in oof.items() if np.isnan(v).any())
    if short:
        raise RuntimeError(f"{short[0]}: staged fold results in {staging} do not cover every record; use a fresh staging folder")
    return oof


def _add_wall(staging: Path, key: str, seconds: float, n_jobs: int) -> None:
    """Accumulate the wall time of the phases that really trained (a resumed run adds only what it ran)."""
    f = staging / "wall_s.json"
    wall = json.loads(f.read_text()) if f.is_file() else {}
    if n_jobs:
        wall[key] = round(wall.get(key, 0.0) + seconds, 1)
        wall[key.replace("_s", "_fits")] = wall.get(key.replace("_s", "_fits"), 0) + n_jobs
        f.write_text(json.dumps(wall))


def zoo_wall_s(staging: str | os.PathLike) -> dict:
    """Wall time spent training in ``staging`` so far: {"cv_s", "refit_s", "cv_fits", "refit_fits"}."""
    f = Path(staging) / "wall_s.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def _save_refit(staging: Path, r: dict) -> None:
    state = {k: torch.from_numpy(v) for k, v in r["state"].items()}
    tmp = staging / f"{r['name']}.pt.tmp"
    torch.save({"state": state, "train_s": r["train_s"]}, tmp)
    tmp.replace(staging / f"{r['name']}.pt")


def _run(jobs, workers: int, threads: int, progress: bool, desc: str, on_result, job=None) -> None:
    """Run ``job`` (default: one zoo fit) over ``jobs`` on ``workers`` forked processes sharing ``_CACHE``."""
    job = job or _job
    if not jobs:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="fit", disable=not progress)
    if workers <= 1:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for j in jobs:
                on_result(job(j))
                bar.update()
        finally:
            torch.set_num_threads(old)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(None, threads)) as pool:
            for r in pool.imap_unordered(job, jobs):
                on_result(r)
                bar.set_postfix_str(f"{r['name']} f{r['fold']}")
                bar.update()
    bar.close()
