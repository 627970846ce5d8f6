"""The recipe changes ``bench/cnn_ideas.py`` tries that need more than a config: a cache at the native 250 Hz, the
features in the head, one output per alarm type, and an encoder that starts pre-trained (``bench/cnn_pretrain.py``).
Each is a context manager that patches ``models.train_cnn`` in the bench process only (the served CNN code is
untouched); the fold workers fork after it is entered and inherit it.
"""

from __future__ import annotations

import numpy as np

from cnn_pretrain import pretrain_folds

# the variants whose encoder starts pre-trained, and how (``cnn_pretrain.pretrain_folds``); "combined-..." adds
# combined's heads
PRETRAINED = {"ssl-pretrain": "simclr", "masked-pretrain": "masked", "combined-masked": "masked", "distill-pretrain": "distill",
              "combined-distill": "distill"}


def variant_patches(name: str, cfg, records, cache, folds, workers: int) -> tuple[list, float]:
    """The context managers variant ``name`` trains under, and the seconds spent preparing them (pre-training)."""
    if name in ("hybrid-features", "combined"):
        feats = scaled_features(records, cache.shifts_s)
        return ([hybrid_head(feats), typed_head()] if name == "combined" else [hybrid_head(feats)]), 0.0
    if name == "typed-heads":
        return [typed_head()], 0.0
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

