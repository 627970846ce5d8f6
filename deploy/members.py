"""One deployment per zoo member: loads the member once, merges concurrent request batches with
``@serve.batch`` into one ``predict_proba`` call, and reports its own service time."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ray import serve

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
        self.predict.set_max_batch_size(max_batch_size)
        self.predict.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def info(self) -> dict:
        return {"name": self.name, "kind": getattr(self.member, "kind", "?")}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.0)
    async def predict(self, windows: list, masks: list, alarm_types: list) -> list:
        """Each argument is a list over merged requests; returns per request (probabilities, service_ms, merged)."""
        sizes = [len(w) for w in windows]
        t0 = time.perf_counter()
        w = windows[0] if len(windows) == 1 else np.concatenate(windows)
        m = masks[0] if len(masks) == 1 else np.concatenate(masks)
        a = [t for ats in alarm_types for t in ats]
        p = check_output(self.name, self.member.predict_proba(w, m, a), len(w))
        service_ms = (time.perf_counter() - t0) * 1000.0
        out, start = [], 0
        for n in sizes:
            out.append((p[start : start + n], service_ms, len(sizes)))
            start += n
        return out
