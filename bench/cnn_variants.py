"""The recipe changes ``bench/cnn_ideas.py`` tries that need more than a config: a cache at the native 250 Hz, the
features in the head, one output per alarm type, and SimCLR, masked-reconstruction or feature-distillation
pre-training of the encoder. Each
is a context manager that patches ``models.train_cnn`` in the bench process only (the served CNN code is untouched);
the fold workers fork after it is entered and inherit it.
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


# the variants whose encoder starts pre-trained, and how; "combined-..." adds combined's heads
PRETRAINED = {"masked-pretrain": "masked", "combined-masked": "masked", "distill-pretrain": "distill", "combined-distill": "distill"}


def variant_patches(name: str, cfg, records, cache, folds, workers: int) -> tuple[list, float]:
    """The context managers variant ``name`` trains under, and the seconds spent preparing them (pre-training)."""
    if name in ("hybrid-features", "combined"):
        feats = scaled_features(records, cache.shifts_s)
        return ([hybrid_head(feats), typed_head()] if name == "combined" else [hybrid_head(feats)]), 0.0
    if name == "typed-heads":
        return [typed_head()], 0.0
    if name == "ssl-pretrain":
        states, wall = pretrain_folds(cfg, records, folds, workers)
        return [pretrained_encoder(states)], wall
    method = PRETRAINED.get(name)
    if method:
        states, wall = pretrain_folds(cfg, records, folds, workers, method=method)
        if not name.startswith("combined-"):
            return [pretrained_encoder(states)], wall
        feats = scaled_features(records, cache.shifts_s)
        return [hybrid_head(feats), typed_head(), pretrained_encoder(states)], wall
    return [], 0.0


def native_cache(records, window_s: float):
    """``models.segments.build_cache`` at 250 Hz: each raw sample doubled, so ``preprocess``'s pair averaging gives back
    the native samples (its robust scale then reads every second sample instead of every fourth)."""
    import models.segments as seg

    orig = seg.preprocess
    seg.preprocess = lambda w, m, fs: orig(np.repeat(w, 2, axis=2), m, fs)
    try:
        return seg.build_cache(records, window_s=window_s, progress=True)
    finally:
        seg.preprocess = orig


def scaled_features(records, shifts_s) -> np.ndarray:
    """[records, shifts, 99] ``models.features`` of each shift's window (cached by ``models.verdict_shift``), scaled."""
    from models.verdict_shift import default_cache, shift_features

    shifts = [int(round(s)) for s in shifts_s]
    F = shift_features(records, shifts, progress=True, cache=default_cache(len(records)))
    X = np.stack([F[f"batch@{o}"] for o in shifts], axis=1)
    flat = X.reshape(-1, X.shape[-1])
    med = np.nanmedian(flat, axis=0)
    iqr = np.nanpercentile(flat, 75, axis=0) - np.nanpercentile(flat, 25, axis=0)
    iqr = np.where(np.isfinite(iqr) & (iqr > 0), iqr, 1.0)
    Z = np.clip(np.nan_to_num((X - med) / iqr, nan=0.0, posinf=5.0, neginf=-5.0), -5.0, 5.0)
    return Z.astype(np.float32)


class hybrid_head:
    """While open, ``models.train_cnn`` builds nets whose head also takes rows of ``feats`` [records, shifts, F] (the
    batch's records and shifts), and feeds them: the hybrid-features variant, without touching the served CNN code."""

    def __init__(self, feats: np.ndarray):
        self.feats = feats

    def __enter__(self):
        feats = self.feats
        import torch
        from torch import nn

        import models.train_cnn as tc

        class Hybrid(tc.ResNet1d):
            def __init__(self, cfg):
                super().__init__(cfg)
                first = self.head[0]
                self.head[0] = nn.Linear(first.in_features + feats.shape[-1], first.out_features)

        orig_batch = tc._batch

        def batch(cache, idx, shift_idx, slots, rng=None, jitter: float = 0.0):
            x, aux = orig_batch(cache, idx, shift_idx, slots, rng, jitter)
            return x, torch.cat([aux, torch.from_numpy(np.ascontiguousarray(feats[idx, shift_idx]))], dim=1)

        self.saved = (tc.ResNet1d, tc._batch)
        tc.ResNet1d, tc._batch = Hybrid, batch
        return self

    def __exit__(self, *exc):
        import models.train_cnn as tc

        tc.ResNet1d, tc._batch = self.saved


class typed_head:
    """While open, ``models.train_cnn`` builds nets with one output per alarm type (``aux`` starts with the one-hot)."""

    def __enter__(self):
        import torch
        from torch import nn

        import models.train_cnn as tc
        from models.cnn import N_TYPES

        class Typed(tc.ResNet1d):
            def __init__(self, cfg):
                super().__init__(cfg)
                self.head[-1] = nn.Linear(self.head[-1].in_features, N_TYPES)

            def forward(self, x, aux):
                h = torch.relu(self.bn(self.blocks(self.stem(x))))
                out = self.head(torch.cat([h.mean(dim=2), h.amax(dim=2), aux], dim=1))
                return (out * aux[:, :N_TYPES]).sum(dim=1)

        self.saved = tc.ResNet1d
        tc.ResNet1d = Typed
        return self

    def __exit__(self, *exc):
        import models.train_cnn as tc

        tc.ResNet1d = self.saved


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

    fold, cfg_d, X, seed = args
    net, rng = _fresh(cfg_d, seed)
    c = net.bn.num_features
    proj = nn.Sequential(nn.Linear(2 * c, SSL["proj"]), nn.ReLU(), nn.Linear(SSL["proj"], SSL["proj"]))
    opt = torch.optim.AdamW(list(net.parameters()) + list(proj.parameters()), lr=SSL["lr"], weight_decay=1e-3)
    flat = _with_signal(X)
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


_UNLABELLED: dict = {}  # set before the pre-training pool forks: the windows every fold job reads its rows from


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


_CURRENT_FOLD = {"fold": None}


def _pretrained_job(args):
    """``models.train_cnn._job`` with the fold noted, so the net it builds starts from that fold's encoder."""
    _CURRENT_FOLD["fold"] = int(args[2])
    return pretrained_encoder.saved_job(args)


class pretrained_encoder:
    """While open, ``models.train_cnn``'s fold jobs start their net from ``states[fold]`` (the encoder)."""

    saved_job = None

    def __init__(self, states: dict[int, dict]):
        self.states = states

    def __enter__(self):
        states = self.states
        import models.train_cnn as tc

        saved_net = tc.ResNet1d

        class Pretrained(saved_net):
            def __init__(self, cfg):
                super().__init__(cfg)
                self.load_state_dict(states[_CURRENT_FOLD["fold"]], strict=False)

        pretrained_encoder.saved_job, self.saved_net = tc._job, saved_net
        tc._job, tc.ResNet1d = _pretrained_job, Pretrained
        return self

    def __exit__(self, *exc):
        import models.train_cnn as tc

        tc._job, tc.ResNet1d = pretrained_encoder.saved_job, self.saved_net


def pretrain_folds(cfg, records, folds, workers: int, seed: int = 0, method: str = "simclr") -> tuple[dict[int, dict], float]:
    """One encoder per outer fold, on its training records' unlabelled windows ({fold: state}, kept in the cache
    folder), and the wall time. ``method``: "simclr" (``_pretrain``), "masked" (``_pretrain_masked``) or "distill"
    (``_pretrain_distill``)."""
    import multiprocessing as mp

    import torch

    from verdict_ideas import cache_path

    t0 = time.perf_counter()
    prefix = {"simclr": "ssl", "masked": "masked", "distill": "distill"}[method]
    path = cache_path(len(records)).with_name(f"{prefix}_{cfg.name}_{len(records)}_s{seed}.pt")
    if path.is_file():
        return torch.load(path), time.perf_counter() - t0
    if method == "masked":
        _UNLABELLED["X"] = unlabelled_windows(records, cfg.slots, cfg.window_s, MASKED["stride_s"])
        print(f"  {_UNLABELLED['X'].shape[0] * _UNLABELLED['X'].shape[1]} unlabelled windows "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        jobs = [(int(k), asdict(cfg), np.flatnonzero(folds != k), seed * 1000 + int(k)) for k in np.unique(folds)]
        work = _pretrain_masked
    elif method == "distill":
        _UNLABELLED["F"] = unlabelled_features(records, cfg.window_s, DISTILL["stride_s"])
        _UNLABELLED["X"] = unlabelled_windows(records, cfg.slots, cfg.window_s, DISTILL["stride_s"])
        print(f"  {_UNLABELLED['X'].shape[0] * _UNLABELLED['X'].shape[1]} unlabelled windows with their features "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        jobs = [(int(k), asdict(cfg), np.flatnonzero(folds != k), seed * 1000 + int(k)) for k in np.unique(folds)]
        work = _pretrain_distill
    else:
        X = unlabelled_windows(records, cfg.slots, cfg.window_s)
        jobs = [(int(k), asdict(cfg), X[folds != k], seed * 1000 + int(k)) for k in np.unique(folds)]
        work = _pretrain
    states = {}
    with mp.get_context("fork").Pool(workers) as pool:
        for k, state in pool.imap_unordered(work, jobs):
            states[k] = state
            print(f"  {method} encoder of fold {k} ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    torch.save(states, path)
    return states, time.perf_counter() - t0
