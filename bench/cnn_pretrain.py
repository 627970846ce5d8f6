"""Pre-training of the CNN encoder on the unlabelled minutes before each alarm, for ``bench/cnn_ideas.py`` and
``bench/cnn_residual.py``: SimCLR, masked reconstruction, or feature distillation (the encoder learns to compute the 99
``models.features`` of each window). Each encoder is trained on the unlabelled windows of one training part only
(``pretrain_encoders``: one per key, e.g. per outer fold), in forked workers, and kept in the cache folder.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

SSL = {"epochs": 8, "batch": 128, "lr": 2e-3, "temperature": 0.2, "proj": 64}
# masked reconstruction: windows every 8 s (twice SimCLR's), 0.5 s spans hidden on every channel until 40 % of the
# window is hidden, the encoder's map decoded back to the samples, squared error on the hidden samples of present leads
MASKED = {"epochs": 6, "batch": 64, "lr": 2e-3, "stride_s": 8.0, "span_s": 0.5, "ratio": 0.4}
# feature distillation: masked's windows, the encoder's pooled map regressed onto each window's 99 scaled features
DISTILL = {"epochs": 6, "batch": 64, "lr": 2e-3, "stride_s": 8.0, "clip": 5.0}

_UNLABELLED: dict = {}  # set before the pre-training pool forks: the windows (and features) every job reads its rows from


def _unlabelled_ends(window_s: float, stride_s: float | None) -> np.ndarray:
    from models.data import ALARM_S

    return np.arange(window_s, ALARM_S - window_s - 12 + 1e-9, stride_s or window_s)  # the last ends before the alarm window starts


def unlabelled_windows(records, slots, window_s: float = 16.0, stride_s: float | None = None) -> np.ndarray:
    """[records, windows, len(slots), n] the CNN input of the 16 s windows ending 16, 16 + stride, ..., 272 s into each
    record (stride: the window; 17 windows)."""
    from models.data import ALARM_S, alarm_window
    from models.segments import preprocess

    ends = _unlabelled_ends(window_s, stride_s)
    out = []
    for r in records:
        w = np.stack([alarm_window(r, window_s, float(ALARM_S - e)) for e in ends])
        x, _, _ = preprocess(w, np.repeat(r.mask[None], len(ends), axis=0), r.fs_hz)
        out.append(x[:, list(slots)])
    return np.stack(out)


def unlabelled_features(records, window_s: float, stride_s: float) -> np.ndarray:
    """[records, windows, 99] ``models.features`` of ``unlabelled_windows``' windows (the raw 250 Hz samples), kept in
    the cache folder: the free targets of the distillation pre-training."""
    from models.data import ALARM_S, alarm_window
    from models.features import extract_batch
    from verdict_ideas import cache_path

    ends = _unlabelled_ends(window_s, stride_s)
    path = cache_path(len(records)).with_name(f"unlabelled_features_{len(records)}_w{window_s:g}_s{stride_s:g}.npz")
    names = np.array([r.name for r in records])
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        if list(z["records"]) == list(names) and np.array_equal(z["ends"], ends):
            return z["F"]
    t0 = time.perf_counter()
    out = []
    for i, r in enumerate(records):
        w = np.stack([alarm_window(r, window_s, float(ALARM_S - e)) for e in ends])
        out.append(extract_batch(w, np.repeat(r.mask[None], len(ends), axis=0), r.fs_hz))
        if (i + 1) % 100 == 0:
            print(f"  features of unlabelled windows: {i + 1}/{len(records)} records ({time.perf_counter() - t0:.0f} s)", flush=True)
    F = np.stack(out).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, records=names, ends=ends, F=F)
    return F


def _augment(x, rng):
    """A random view of x [B, C, n] (numpy): per-channel gain and polarity, noise, a 1.5 s gap, a dropped channel."""
    b, c, n = x.shape
    v = x * rng.uniform(0.6, 1.4, (b, c, 1)) * rng.choice([-1.0, 1.0], (b, c, 1))
    v = v + rng.normal(0.0, 0.05, v.shape)
    gap = int(1.5 * 125)
    for i in range(b):
        if rng.random() < 0.5:
            a = rng.integers(0, n - gap)
            v[i, :, a:a + gap] = 0.0
        keep = rng.random(c) > 0.2
        if keep.any():
            v[i, ~keep] = 0.0
    return v.astype(np.float32)


def _fresh(cfg_d: dict, seed: int):
    """A pre-training job's start: one torch thread, a seeded new net of config ``cfg_d`` and a seeded generator."""
    import torch

    from models.cnn import CNNConfig, ResNet1d

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    return ResNet1d(CNNConfig(**cfg_d)), rng


def _with_signal(X: np.ndarray) -> np.ndarray:
    """[records, windows, C, n] -> [windows with some signal, C, n]."""
    flat = X.reshape(-1, *X.shape[2:])
    return flat[np.abs(flat).reshape(len(flat), -1).max(1) > 0]


def _encoder_state(net) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items() if not k.startswith("head.")}


def _pretrain(args) -> tuple[int, dict]:
    """SimCLR on the unlabelled windows of one outer fold's training records: the encoder's state."""
    import torch
    from torch import nn

    fold, cfg_d, rows, seed = args
    net, rng = _fresh(cfg_d, seed)
    c = net.bn.num_features
    proj = nn.Sequential(nn.Linear(2 * c, SSL["proj"]), nn.ReLU(), nn.Linear(SSL["proj"], SSL["proj"]))
    opt = torch.optim.AdamW(list(net.parameters()) + list(proj.parameters()), lr=SSL["lr"], weight_decay=1e-3)
    flat = _with_signal(_UNLABELLED["X"][rows])
    net.train()
    for _ in range(SSL["epochs"]):
        order = rng.permutation(len(flat))
        for s in range(0, len(order) - SSL["batch"] + 1, SSL["batch"]):
            xb = flat[order[s:s + SSL["batch"]]]
            v = torch.from_numpy(np.concatenate([_augment(xb, rng), _augment(xb, rng)]))
            h = torch.relu(net.bn(net.blocks(net.stem(v))))
            z = nn.functional.normalize(proj(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)), dim=1)
            sim = z @ z.T / SSL["temperature"]
            sim.fill_diagonal_(-1e9)
            m = len(xb)
            target = torch.cat([torch.arange(m, 2 * m), torch.arange(0, m)])
            loss = nn.functional.cross_entropy(sim, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return fold, _encoder_state(net)


def _mask(b: int, n: int, rng) -> np.ndarray:
    """[b, n] bool: spans of ``MASKED["span_s"]`` at random starts until ``MASKED["ratio"]`` of each row is hidden."""
    span = int(round(MASKED["span_s"] * 125))
    m = np.zeros((b, n), dtype=bool)
    for i in range(b):
        while m[i].mean() < MASKED["ratio"]:
            a = rng.integers(0, n - span)
            m[i, a:a + span] = True
    return m


def _train(net, extra, spec: dict, n: int, rng, step) -> list[list[float]]:
    """AdamW on ``net`` and ``extra`` (the pre-training head) for ``spec["epochs"]`` passes over ``n`` rows in shuffled
    batches of ``spec["batch"]``: ``step(rows)`` gives each batch's loss. The losses, per epoch."""
    import torch

    opt = torch.optim.AdamW(list(net.parameters()) + list(extra.parameters()), lr=spec["lr"], weight_decay=1e-3)
    net.train()
    losses = []
    for _ in range(spec["epochs"]):
        order = rng.permutation(n)
        losses.append([])
        for s in range(0, n - spec["batch"] + 1, spec["batch"]):
            loss = step(order[s:s + spec["batch"]])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[-1].append(float(loss.detach()))
    return losses


def _pretrain_masked(args) -> tuple[int, dict]:
    """Masked reconstruction on the unlabelled windows of one outer fold's training records: the encoder's state."""
    import torch
    from torch import nn

    fold, cfg_d, rows, seed = args
    net, rng = _fresh(cfg_d, seed)
    flat = _with_signal(_UNLABELLED["X"][rows])
    c_in, n = flat.shape[1], flat.shape[2]
    with torch.no_grad():
        steps = net.blocks(net.stem(torch.zeros(1, c_in, n))).shape[2]
    up = n // steps
    assert up * steps == n, (n, steps)
    dec = nn.Sequential(nn.Conv1d(net.bn.num_features, 64, 3, padding=1), nn.ReLU(), nn.Conv1d(64, c_in * up, 1))

    def step(rows):
        xb = flat[rows]
        hide = _mask(len(xb), n, rng)
        x = torch.from_numpy(xb)
        h = torch.relu(net.bn(net.blocks(net.stem(x * torch.from_numpy(~hide)[:, None, :]))))
        rec = dec(h).reshape(len(xb), c_in, up, steps).permute(0, 1, 3, 2).reshape(len(xb), c_in, n)
        present = torch.from_numpy((np.abs(xb).max(axis=2) > 0).astype(np.float32))[:, :, None]
        w = present * torch.from_numpy(hide.astype(np.float32))[:, None, :]
        return (w * (rec - x) ** 2).sum() / w.sum().clamp(min=1.0)

    losses = _train(net, dec, MASKED, len(flat), rng, step)
    print(f"  masked fold {fold}: hidden-sample error by epoch " + " ".join(f"{np.mean(e):.3f}" for e in losses), flush=True)
    return fold, _encoder_state(net)


def _pretrain_distill(args) -> tuple[int, dict]:
    """Feature distillation on the unlabelled windows of one outer fold's training records: the encoder's state."""
    import torch
    from torch import nn

    fold, cfg_d, rows, seed = args
    net, rng = _fresh(cfg_d, seed)
    X = _UNLABELLED["X"][rows].reshape(-1, *_UNLABELLED["X"].shape[2:])
    F = _UNLABELLED["F"][rows].reshape(-1, _UNLABELLED["F"].shape[-1])
    keep = np.abs(X).reshape(len(X), -1).max(1) > 0
    X, F = X[keep], F[keep]
    med = np.nanmedian(F, axis=0)
    iqr = np.nanpercentile(F, 75, axis=0) - np.nanpercentile(F, 25, axis=0)
    iqr = np.where(np.isfinite(iqr) & (iqr > 0), iqr, 1.0)
    valid = np.isfinite(F)
    Z = np.clip(np.where(valid, (F - np.nan_to_num(med)) / iqr, 0.0), -DISTILL["clip"], DISTILL["clip"]).astype(np.float32)
    zero_loss = float((Z ** 2).sum() / max(valid.sum(), 1))
    c = net.bn.num_features
    head = nn.Linear(2 * c, F.shape[1])

    def step(rows):
        h = torch.relu(net.bn(net.blocks(net.stem(torch.from_numpy(X[rows])))))
        pred = head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))
        w = torch.from_numpy(valid[rows].astype(np.float32))
        return (w * (pred - torch.from_numpy(Z[rows])) ** 2).sum() / w.sum().clamp(min=1.0)

    losses = _train(net, head, DISTILL, len(X), rng, step)
    print(f"  distill fold {fold}: scaled-feature error by epoch " + " ".join(f"{np.mean(e):.3f}" for e in losses)
          + f" (predicting the median: {zero_loss:.3f})", flush=True)
    return fold, _encoder_state(net)


WORK = {"simclr": ("ssl", None), "masked": ("masked", MASKED), "distill": ("distill", DISTILL)}  # cache prefix, settings


def pretrain_encoders(cfg, records, rows: dict, seeds: dict, workers: int, method: str, path) -> dict:
    """{key: encoder state} of ``method`` ("simclr", "masked" or "distill") for each key of ``rows`` (the records whose
    unlabelled windows it trains on; ``seeds[key]`` its seed), kept at ``path`` and reused while it holds the same keys."""
    import multiprocessing as mp

    import torch

    if path.is_file():
        states = torch.load(path)
        if set(states) == set(rows):
            return states
    t0 = time.perf_counter()
    spec = WORK[method][1]
    stride = spec["stride_s"] if spec else None
    if method == "distill":
        _UNLABELLED["F"] = unlabelled_features(records, cfg.window_s, stride)
    _UNLABELLED["X"] = unlabelled_windows(records, cfg.slots, cfg.window_s, stride)
    print(f"  {_UNLABELLED['X'].shape[0] * _UNLABELLED['X'].shape[1]} unlabelled windows ({time.perf_counter() - t0:.0f} s)",
          flush=True)
    work = {"simclr": _pretrain, "masked": _pretrain_masked, "distill": _pretrain_distill}[method]
    jobs = [(key, asdict(cfg), r, seeds[key]) for key, r in rows.items()]
    states = {}
    with mp.get_context("fork").Pool(workers) as pool:
        for key, state in pool.imap_unordered(work, jobs):
            states[key] = state
            print(f"  {method} encoder {len(states)}/{len(jobs)} ({key}) ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(states, path)
    return states


def pretrain_folds(cfg, records, folds, workers: int, seed: int = 0, method: str = "simclr") -> tuple[dict[int, dict], float]:
    """One encoder per fold of ``folds``, on the other folds' unlabelled windows ({fold: state}), and the wall time."""
    from verdict_ideas import cache_path

    t0 = time.perf_counter()
    path = cache_path(len(records)).with_name(f"{WORK[method][0]}_{cfg.name}_{len(records)}_s{seed}.pt")
    ks = [int(k) for k in np.unique(folds)]
    states = pretrain_encoders(cfg, records, {k: np.flatnonzero(folds != k) for k in ks}, {k: seed * 1000 + k for k in ks},
                               workers, method, path)
    return states, time.perf_counter() - t0
