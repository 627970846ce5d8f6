"""``ServeScorer``: the stream consumer's scorer backed by the running Ray Serve application.

One handle call per tick's batch of windows (never one per window). The deadline passed to the service is
the time left until the earliest window of the batch is due; the policy picks the ensemble that fits it.
With ``lane="verdict"`` (the consumer's verdict lane) the service answers ahead of routine work and never
below ``floor``. Registered in the stream scorer registry as ``serve`` when this module is imported:

    import deploy.scorer; from streams.scorer import make_scorer
    scorer = make_scorer("serve", app_name="holmes")
"""

from __future__ import annotations

import time

import numpy as np

from models.errors import InvalidFieldError
from streams.scorer import ScoreOut, WindowBatch, register_scorer


class ServeScorer:
    def __init__(self, app_name: str = "holmes", ray_address: str | None = None, deadline_ms: float | None = None,
                 min_deadline_ms: float = 1.0, handle=None, timeout_s: float = 30.0, max_request_windows: int = 64,
                 raw: bool = False, lane: str = "routine", floor: str | None = None, ensemble: str | None = None):
        if handle is None:  # a stale service file or an unreachable address is reported at once, naming it
            from .runtime import connect_service

            handle = connect_service(app_name, ray_address)
        self.handle = handle
        self.raw = raw  # publish the members' combined probability uncalibrated (the cascade's costly rung reads it)
        if lane not in ("routine", "verdict"):
            raise InvalidFieldError("lane", "must be 'routine' or 'verdict'", lane, ["routine", "verdict"])
        self.lane = lane  # "verdict": alarm windows, ahead of routine work and never below ``floor``
        self.floor = floor  # None: the service's configured floor (ServeConfig.verdict_floor) for verdicts
        self.ensemble = ensemble  # a plan row to request by name (the cascade's costly rung: the row its gates were tuned on)
        self.name = f"serve:{app_name}" + (":verdicts" if lane == "verdict" else "")
        self.deadline_ms = deadline_ms
        self.min_deadline_ms = min_deadline_ms
        self.timeout_s = timeout_s
        self.max_request_windows = max_request_windows

    def _deadline_ms(self, batch: WindowBatch) -> float:
        """Time left until the earliest window of the batch is due; ``deadline_ms`` when the batch has none."""
        due = np.asarray(batch.deadline_unix_s, dtype=np.float64)
        if len(due) == 0 or not np.isfinite(due).any():
            return float(self.deadline_ms or 1000.0)
        return max((float(np.nanmin(due)) - time.time()) * 1000.0, self.min_deadline_ms)

    def score_arrays(self, windows: np.ndarray, masks: np.ndarray, alarm_types, deadline_ms: float, ensemble: str | None = None,
                     features: np.ndarray | None = None) -> list[dict]:
        """Service answers (probabilities, verdicts, ensemble, latency breakdown), one per request of at most
        ``max_request_windows`` windows; the requests of one batch are in flight together. ``features``: the windows'
        ``models.features`` rows where the caller has them (sent along, so the service does not extract them again)."""
        import ray

        windows = np.ascontiguousarray(windows, dtype=np.float32)
        n, step = len(windows), self.max_request_windows
        resps = []
        for s in range(0, n, step):
            ref = ray.put(windows[s : s + step])  # one copy into the object store, read zero-copy by the replicas
            kw = {} if features is None else {"features": features[s : s + step]}
            resps.append(self.handle.score.remote(ref, masks[s : s + step], list(alarm_types[s : s + step]), deadline_ms, ensemble,
                                                  self.lane, self.floor, **kw))
        return [r.result(timeout_s=self.timeout_s) for r in resps]

    def score(self, batch: WindowBatch) -> list[ScoreOut]:
        if len(batch) == 0:
            return []
        t0 = time.perf_counter()
        outs = self.score_arrays(batch.windows, batch.masks, batch.alarm_types, self._deadline_ms(batch), self.ensemble, batch.features)
        call_ms = (time.perf_counter() - t0) * 1000.0
        scores = []
        for out in outs:
            models = (f"plan:{out['ensemble']['name']}",) + tuple(out["ensemble"]["members"])  # the plan row, then its members
            if out["fits_deadline"]:
                reason = None
            elif out.get("lane") == "verdict":
                reason = "verdict_deadline_at_risk_floor_ensemble"  # never weaker than the floor: maybe late
            else:
                reason = "deadline_unreachable_cheapest_ensemble"
            timings = {"serve_call_ms": call_ms, "fanout_ms": out["latency_ms"]["fanout"], "shared_ms": out["latency_ms"]["shared"],
                       "expected_queue_ms": out["latency_ms"]["expected_queue"], "batch_size": float(len(batch))}
            probs = out["raw_probabilities"] if self.raw else out["probabilities"]
            scores += [ScoreOut(float(p), bool(v), 1, models, reason, timings) for p, v in zip(probs, out["verdicts"])]
        return scores


_OPTIONS = {"app_name", "ray_address", "deadline_ms", "min_deadline_ms", "handle", "timeout_s", "max_request_windows", "raw",
            "lane", "floor", "ensemble"}
_IGNORED = {"member", "member_path", "threshold", "registry", "data"}  # other scorers' options the CLI may pass


def _serve_factory(**options) -> ServeScorer:
    unknown = set(options) - _OPTIONS - _IGNORED
    if unknown:
        raise InvalidFieldError("scorer options", "has unknown keys for the serve scorer", sorted(unknown), sorted(_OPTIONS))
    return ServeScorer(**{k: v for k, v in options.items() if k in _OPTIONS})


register_scorer("serve", _serve_factory, replace=True)
