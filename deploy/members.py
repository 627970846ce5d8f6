"""One deployment per zoo member: loads the member once, merges concurrent request batches with
``@serve.batch`` into one call, and reports its own service time.

``heads`` is what the ingress calls: it gets the batch's shared work (``models.ensemble.Shared``: the CNN
preprocessing and the features, done once by the ingress for every member) and runs only this member's own
model on it. ``predict`` takes raw windows (the member does its own preprocessing), for direct callers."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ray import serve

from models.ensemble import Shared, head, needs
from models.member import check_output


def load_member(source: Any):
    """A Member from ``{"registry_dir", "registry_version", "name"}`` or the Member object itself."""
    if isinstance(source, dict):
        from models.registry import Registry

        reg = Registry(source["registry_dir"])
        version = source.get("registry_version")
        return reg.load(source["name"], version=version) if version else reg.load(source["name"])
    return source


def set_torch_threads(n: int) -> None:
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # feature-only members need no torch
        pass


@serve.deployment(max_ongoing_requests=64)
class MemberModel:
    def __init__(self, source: Any, torch_threads: int = 1, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.0):
        set_torch_threads(torch_threads)
        self.member = load_member(source)
        self.name = self.member.name
        for f in (self.predict, self.heads):
            f.set_max_batch_size(max_batch_size)
            f.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def info(self) -> dict:
        return {"name": self.name, "kind": getattr(self.member, "kind", "?"), "needs": needs(self.member)}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.0)
    async def heads(self, shared: list, alarm_types: list) -> list:
        """Per merged request: (probabilities, service_ms, merged) of this member's head on the shared work."""
        sizes = [len(s) for s in shared]
        t0 = time.perf_counter()
        p = head(self.member, Shared.concat(shared), [t for ats in alarm_types for t in ats])
        return _per_request(p, sizes, (time.perf_counter() - t0) * 1000.0)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.0)
    async def predict(self, windows: list, masks: list, alarm_types: list) -> list:
        """Each argument is a list over merged requests; returns per request (probabilities, service_ms, merged)."""
        sizes = [len(w) for w in windows]
        t0 = time.perf_counter()
        w = windows[0] if len(windows) == 1 else np.concatenate(windows)
        m = masks[0] if len(masks) == 1 else np.concatenate(masks)
        a = [t for ats in alarm_types for t in ats]
        p = check_output(self.name, self.member.predict_proba(w, m, a), len(w))
        return _per_request(p, sizes, (time.perf_counter() - t0) * 1000.0)


def _per_request(p: np.ndarray, sizes: list[int], service_ms: float) -> list:
    """Split one merged call's probabilities back per request: (probabilities, service_ms, requests merged)."""
    out, start = [], 0
    for n in sizes:
        out.append((p[start : start + n], service_ms, len(sizes)))
        start += n
    return out
