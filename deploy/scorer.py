"""``ServeScorer``: the stream consumer's scorer backed by the running Ray Serve application.

One handle call per tick's batch of windows (never one per window). The deadline passed to the service is
the time left until the earliest window of the batch is due; the policy picks the ensemble that fits it.
Registered in the stream scorer registry as ``serve`` when this module is imported:

    import deploy.scorer; from streams.scorer import make_scorer
    scorer = make_scorer("serve", app_name="holmes")
"""

from __future__ import annotations

import time

import numpy as np

from models.errors import InvalidFieldError
from streams.scorer import ScoreOut, WindowBatch, register_scorer


class ServeScorer:
    def __init__(self, app_name: str = "holmes", ray_address: str | None = "auto", deadline_ms: float | None = None,
                 min_deadline_ms: float = 1.0, handle=None, timeout_s: float = 30.0):
        if handle is None:
            import ray
            from ray import serve

            if not ray.is_initialized():
                ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
            handle = serve.get_app_handle(app_name)
        self.handle = handle
        self.name = f"serve:{app_name}"
        self.deadline_ms = deadline_ms
        self.min_deadline_ms = min_deadline_ms
        self.timeout_s = timeout_s

    def _deadline_ms(self, batch: WindowBatch) -> float:
        if self.deadline_ms is not None:
            return float(self.deadline_ms)
        due = np.asarray(batch.deadline_unix_s, dtype=np.float64)
        if len(due) == 0 or not np.isfinite(due).any():
            return 1000.0
        return max((float(np.nanmin(due)) - time.time()) * 1000.0, self.min_deadline_ms)

    def score_arrays(self, windows: np.ndarray, masks: np.ndarray, alarm_types, deadline_ms: float, ensemble: str | None = None) -> dict:
        """The raw service answer for one batch (probabilities, verdicts, ensemble, latency breakdown)."""
        import ray

        ref = ray.put(np.ascontiguousarray(windows, dtype=np.float32))  # one copy into the object store, read zero-copy
        return self.handle.score.remote(ref, masks, list(alarm_types), deadline_ms, ensemble).result(timeout_s=self.timeout_s)

    def score(self, batch: WindowBatch) -> list[ScoreOut]:
        if len(batch) == 0:
            return []
        t0 = time.perf_counter()
        out = self.score_arrays(batch.windows, batch.masks, batch.alarm_types, self._deadline_ms(batch))
        call_ms = (time.perf_counter() - t0) * 1000.0
        models = tuple(out["ensemble"]["members"])
        reason = None if out["fits_deadline"] else "deadline_unreachable_cheapest_ensemble"
        timings = {"serve_call_ms": call_ms, "fanout_ms": out["latency_ms"]["fanout"],
                   "expected_queue_ms": out["latency_ms"]["expected_queue"], "batch_size": float(len(batch))}
        return [ScoreOut(float(p), bool(v), 1, models, reason, timings) for p, v in zip(out["probabilities"], out["verdicts"])]


_OPTIONS = {"app_name", "ray_address", "deadline_ms", "min_deadline_ms", "handle", "timeout_s"}
_IGNORED = {"member", "member_path", "threshold", "registry", "data"}  # other scorers' options the CLI may pass


def _serve_factory(**options) -> ServeScorer:
    unknown = set(options) - _OPTIONS - _IGNORED
    if unknown:
        raise InvalidFieldError("scorer options", "has unknown keys for the serve scorer", sorted(unknown), sorted(_OPTIONS))
    return ServeScorer(**{k: v for k, v in options.items() if k in _OPTIONS})


register_scorer("serve", _serve_factory, replace=True)
