"""The ingress deployment: HTTP (FastAPI) and Python-handle entry point holding the composer's plan and the
run-time slack policy. Per request batch it picks the ensemble that fits the slack, does the work its members
share once (CNN preprocessing, features: ``models.ensemble.prepare``), fans that out to the member deployments
concurrently (each runs only its own head), combines their probabilities by the row's rule
(``models.ensemble.combine``), calibrates, and answers with the latency breakdown.

Two lanes: a request with ``lane="verdict"`` (the window that answers a monitor alarm) is chosen among the rows
at least as strong as its ``floor`` (default: the most accurate row on nested CV) and goes ahead of routine
requests: a routine request waits to fan out while a verdict is being prepared or fanned out.

    POST /v1/score      {windows | windows_b64+shape, masks?, alarm_types, deadline_ms?, ensemble?, lane?, floor?}
    GET  /v1/ensembles  the plan's ensembles with their CV scores and predicted latency
    GET  /healthz       ok + deployed members
Handle API: ``handle.score.remote(windows, masks, alarm_types, deadline_ms, ensemble=None, lane="routine", floor=None)``.
"""


import asyncio
import time

import numpy as np
import ray
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve

from holmes.compose.plan import Plan
from holmes.policy import SlackPolicy
from models.calibration import Calibrator
from models.ensemble import check_features, combine, prepare
from models.errors import HolmesInputError, InvalidFieldError

from .config import ServeConfig
from .schema import ScoreRequest, as_serve_error, check_deadline, check_request, decode_windows

api = FastAPI(title="HOLMES-ICU ensemble service", version="1")


def _error(status: int, e: HolmesInputError) -> JSONResponse:
    body = {"error": type(e).__name__, "message": str(e)}
    if isinstance(e, InvalidFieldError):
        body.update(field=e.field, rule=e.rule, value=repr(e.value)[:200], options=e.options)
    return JSONResponse(status_code=status, content={"detail": body})


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError):
    errs = exc.errors()
    first = errs[0] if errs else {}
    field = ".".join(str(x) for x in first.get("loc", ())[1:]) or "body"
    msg = f"{field} {first.get('msg', 'is invalid')}"
    return JSONResponse(status_code=422, content={"detail": {"error": "InvalidFieldError", "field": field, "message": msg, "errors": [
        {"loc": list(map(str, e.get("loc", ()))), "msg": e.get("msg")} for e in errs[:5]]}})


@serve.deployment(max_ongoing_requests=64)
@serve.ingress(api)
class Ingress:
    def __init__(self, members: dict, plan: dict, config: dict):
        self.config = ServeConfig(**config)
        self.plan = Plan.from_dict(plan)
        self.policy = SlackPolicy(self.plan)
        self.members = members  # name -> DeploymentHandle
        missing = [m for m in self.plan.members if m not in members]
        if missing:
            raise InvalidFieldError("plan", "uses members that are not deployed", missing, sorted(members))
        self._backlog_ms: dict[str, float] = {m: 0.0 for m in members}  # predicted work queued per member replica
        self._inflight_ms = 0.0  # predicted service time of the requests in flight (overheads and fan-out included)
        self.n_served = 0
        self.n_rejected = 0
        self.n_verdicts = 0
        self._verdicts_busy = 0  # verdict requests between arrival and their members' answers
        self._verdicts_done = asyncio.Event()
        self._verdicts_done.set()
        self._needs: dict[str, str] | None = None  # member -> shared work it reads ("cnn", "features", "raw")
        # each plan row's calibration map, checked once here (a bad map refuses the plan, naming the row)
        self._maps = {}
        for e in self.plan.ensembles:
            try:
                self._maps[e.name] = Calibrator.from_dict(e.calibration)
            except InvalidFieldError as err:
                raise InvalidFieldError(f"plan.ensembles[{e.name}].calibration", "must be a models.calibration map", err.value) from None

    def _calibrator(self, spec) -> Calibrator:
        return self._maps.get(spec.name) or Calibrator.from_dict(spec.calibration)

    async def score(self, windows, masks, alarm_types, deadline_ms=None, ensemble=None, lane="routine", floor=None,
                    _t_arrive=None, features=None) -> dict:
        """Score one batch of windows (the handle API); raises InvalidFieldError on bad input. ``features``: the
        windows' feature rows when the caller has them already (the cascade's escalations): not extracted again."""
        try:
            if lane not in ("routine", "verdict"):
                raise InvalidFieldError("lane", "must be 'routine' or 'verdict'", lane, ["routine", "verdict"])
            if lane == "verdict":
                self._verdicts_busy += 1
                self._verdicts_done.clear()
                try:
                    return await self._score(windows, masks, alarm_types, deadline_ms, ensemble, _t_arrive, lane,
                                             floor or self.config.verdict_floor, features)
                finally:
                    self._verdicts_busy -= 1
                    if self._verdicts_busy == 0:
                        self._verdicts_done.set()
            return await self._score(windows, masks, alarm_types, deadline_ms, ensemble, _t_arrive, lane, floor, features)
        except InvalidFieldError as e:
            raise as_serve_error(e) from None

    async def _member_needs(self) -> dict[str, str]:
        if self._needs is None:
            infos = await asyncio.gather(*[h.info.remote() for h in self.members.values()])
            self._needs = {name: i.get("needs", "raw") for name, i in zip(self.members, infos)}
        return self._needs

    async def _score(self, windows, masks, alarm_types, deadline_ms, ensemble, _t_arrive, lane="routine", floor=None,
                     features=None) -> dict:
        t0 = _t_arrive or time.perf_counter()
        deadline_ms = check_deadline(self.config.default_deadline_ms if deadline_ms is None else deadline_ms)
        windows, masks, alarm_types = check_request(windows, masks, alarm_types, self.config.max_request_windows, self.config.window_s)
        if floor is not None and floor != "auto":
            self.plan.get(floor)  # an unknown floor is refused, naming the plan's rows
        if features is not None:
            features = check_features(features, len(windows))
        t_valid = time.perf_counter()
        waited_ms = 0.0
        if lane == "routine" and not self._verdicts_done.is_set():  # verdicts first
            await self._verdicts_done.wait()
            waited_ms = (time.perf_counter() - t_valid) * 1000.0
        now = time.perf_counter()
        backlog = dict(self._backlog_ms)
        # replicas share the cores, so requests in flight finish together: the queue is the whole predicted service
        # time of those in flight (it counts ingress and fan-out work that member times leave out), or the queued
        # member work spread over the cores when that is larger
        cpu_queue_ms = max(sum(backlog.values()) / self.policy.model.n_workers, self._inflight_ms)
        choice = self.policy.choose(len(windows), deadline_ms, (now - t0) * 1000.0, cpu_queue_ms, ensemble, backlog_ms=backlog,
                                    floor=floor if ensemble is None else None)
        queue_ms = max(cpu_queue_ms, max((backlog.get(m, 0.0) for m in choice.spec.members), default=0.0))
        work = {m: self.policy.member_ms(m, len(windows)) for m in choice.spec.members}
        for m, ms in work.items():
            self._backlog_ms[m] += ms
        self._inflight_ms += choice.predicted_ms
        t_prep = time.perf_counter()
        try:
            # the work the members share, once for the batch (in a thread: the event loop keeps taking requests)
            need = await self._member_needs()
            what = {need.get(m, "raw") for m in choice.spec.members} - {"raw"}
            shared = await asyncio.get_running_loop().run_in_executor(None, prepare, windows, masks, what, features)
            t_fan = time.perf_counter()
            # one copy into the object store; every member replica reads it zero-copy (Ray resolves the ref)
            ref = ray.put(shared) if len(choice.spec.members) > 1 or windows.nbytes > 1 << 20 else shared
            outs = await asyncio.gather(*[
                self.members[m].heads.remote(ref, alarm_types, m) if self.plan.kinds.get(m) == "subnet"  # one supernet
                else self.members[m].heads.remote(ref, alarm_types) for m in choice.spec.members])
        finally:
            for m, ms in work.items():
                self._backlog_ms[m] = max(self._backlog_ms[m] - ms, 0.0)
            self._inflight_ms = max(self._inflight_ms - choice.predicted_ms, 0.0)
        t_back = time.perf_counter()
        spec = choice.spec
        probs = combine({m: o[0] for m, o in zip(spec.members, outs)}, self.plan.kinds, spec.rule, spec.members)
        published = self._calibrator(spec).transform(probs)
        fanout_ms = (t_back - t_fan) * 1000.0
        prepare_ms = (t_fan - t_prep) * 1000.0
        self.policy.observe(spec.name, len(windows), fanout_ms + prepare_ms)
        self.n_served += 1
        self.n_verdicts += lane == "verdict"
        t_end = time.perf_counter()
        return {
            "probabilities": published,  # calibrated with the plan row's map (identity when it has none)
            "raw_probabilities": probs,  # the members' mean, which the verdict threshold and the cascade's gates read
            "verdicts": (probs >= choice.spec.threshold),
            "threshold": choice.spec.threshold,
            "ensemble": {"name": spec.name, "members": list(spec.members), "rule": spec.rule, "auroc": spec.auroc, "score": spec.score},
            "fits_deadline": bool(choice.fits),
            "lane": lane,
            "floor": None if floor is None else (self.plan.floor().name if floor == "auto" else floor),
            "requested_ensemble": choice.requested,
            "deadline_ms": deadline_ms,
            "slack_ms": choice.slack_ms,
            "predicted_ms": choice.predicted_ms,
            "latency_ms": {
                "validate": (t_valid - t0) * 1000.0,
                "waited_for_verdicts": waited_ms,
                "expected_queue": queue_ms,
                "shared": prepare_ms,
                "shared_parts": shared.prepare_ms or {},
                "fanout": fanout_ms,
                "members": {m: o[1] for m, o in zip(choice.spec.members, outs)},
                "merged_requests": {m: o[2] for m, o in zip(choice.spec.members, outs)},
                "aggregate": (t_end - t_back) * 1000.0,
                "ingress_total": (t_end - t0) * 1000.0,
            },
        }

    @api.post("/v1/score")
    async def http_score(self, req: ScoreRequest):  # (no postponed annotations in this module: FastAPI reads them)
        t0 = time.perf_counter()
        try:
            windows = decode_windows(req)
            masks = np.asarray(req.masks, dtype=bool) if req.masks is not None else None
            if req.masks is not None and np.asarray(req.masks).shape != (len(windows), windows.shape[1] if windows.ndim == 3 else -1):
                raise InvalidFieldError("masks", "must have shape [batch, 5]", list(np.asarray(req.masks).shape))
            out = await self.score(windows, masks, req.alarm_types, req.deadline_ms, req.ensemble, req.lane, req.floor, _t_arrive=t0)
        except HolmesInputError as e:
            self.n_rejected += 1
            return _error(422, e)
        out["probabilities"] = out["probabilities"].tolist()
        out["raw_probabilities"] = out["raw_probabilities"].tolist()
        out["verdicts"] = out["verdicts"].tolist()
        return out

    @api.get("/v1/ensembles")
    def ensembles(self) -> dict:
        ratios = self.policy.ratios()
        return {
            "load": self.plan.load,
            "ensembles": [{**e.to_dict(), "measured_over_predicted": ratios.get(e.name)} for e in self.plan.ensembles],
        }

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok", "members": sorted(self.members), "served": self.n_served, "verdicts": self.n_verdicts,
                "rejected": self.n_rejected, "floor": self.plan.floor().name}
