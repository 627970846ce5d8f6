"""Cost profile of a zoo member: parameters, multiply-accumulates and measured latency.

Latency is the wall time of ``member.predict_proba`` on raw 250 Hz windows (preprocessing included, as a
service sees it), one thread, median of repeated runs, at batch sizes 1, 8 and 64.

>>> from models.cnn import CNNConfig, CNNMember
>>> m = CNNMember(CNNConfig(inputs="ecg", width=8, depth=2))
>>> count_params(m) == sum(p.numel() for p in m.net.parameters())
True
>>> count_macs(m) > 10 * count_params(m)
True
"""

from __future__ import annotations

import statistics
import time
from typing import Sequence

import numpy as np

from .data import ALARM_TYPES, N_SLOTS

BATCH_SIZES: tuple[int, ...] = (1, 8, 64)


def count_params(member) -> int:
    """Learned parameters: torch parameters for a CNN, ``n_params_`` (or 0) for other members."""
    net = getattr(member, "net", None)
    if net is not None:
        return int(sum(p.numel() for p in net.parameters()))
    return int(getattr(member, "n_params_", 0))


def count_macs(member) -> int:
    """Multiply-accumulates for one window (conv and linear layers), by forward hooks on a real pass.

    Members without a torch network, or whose network runs functional convolutions (supernet subnets),
    report ``n_macs_`` (or 0).
    """
    net = getattr(member, "net", None)
    if net is None or hasattr(member, "n_macs_"):
        return int(getattr(member, "n_macs_", 0))
    import torch
    from torch import nn

    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv1d):
            total[0] += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * mod.kernel_size[0]
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() // out.shape[0] * mod.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    try:
        w, masks, types = example_batch(1, member)
        with torch.inference_mode():
            member.predict_proba(w, masks, types)
    finally:
        for h in handles:
            h.remove()
    return int(total[0])


def example_batch(batch: int, member=None, seed: int = 0):
    """Random raw windows with every slot present, sized for ``member`` (16 s at 250 Hz by default)."""
    n = int(getattr(member, "n_samples", 4000))
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(batch, N_SLOTS, n)).astype(np.float32)
    masks = np.ones((batch, N_SLOTS), dtype=bool)
    types = [ALARM_TYPES[i % len(ALARM_TYPES)] for i in range(batch)]
    return w, masks, types


def measure_latency_ms(
    member, batch_sizes: Sequence[int] = BATCH_SIZES, repeats: int = 15, min_time_s: float = 0.3, threads: int = 1
) -> dict[str, float]:
    """Median wall time (ms) of one ``predict_proba`` call per batch size, with ``threads`` threads (torch, OpenMP, BLAS)."""
    import torch
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    limits = threadpool_limits(limits=threads)  # OpenMP/BLAS pools of scikit-learn models too
    out: dict[str, float] = {}
    try:
        for b in batch_sizes:
            w, masks, types = example_batch(b, member)
            member.predict_proba(w, masks, types)  # warm-up
            times: list[float] = []
            start = time.perf_counter()
            while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < min_time_s * repeats):
                t0 = time.perf_counter()
                member.predict_proba(w, masks, types)
                times.append((time.perf_counter() - t0) * 1e3)
            out[str(b)] = round(statistics.median(times), 4)
    finally:
        torch.set_num_threads(old)
        limits.restore_original_limits()
    return out


def profile_member(member, repeats: int = 15) -> dict:
    """{"params", "macs", "latency_ms"} for one member."""
    return {"params": count_params(member), "macs": count_macs(member), "latency_ms": measure_latency_ms(member, repeats=repeats)}
