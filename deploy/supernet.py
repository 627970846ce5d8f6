"""One deployment serves every subnet of the supernet from one replica's weights (SuperServe's SubNetAct).

``SupernetModel`` loads the registry's subnet members (they share one ``models.supernet.Supernet``: one set of
weights in memory) and answers two kinds of call, both merged by ``@serve.batch``:

Requests are checked one by one before they are merged (a bad one is refused alone, as a ``ServeInputError``).

``heads(shared, alarm_types, member)``
    what the HOLMES ingress calls for a plan row that names subnets: each merged request names its subnet, the
    merged batch is grouped by subnet and each group runs on the shared weights (no copy, no switch state).

``slackfit(shared, alarm_types, deadline_unix_s, mode)``
    SlackFit serving: the merged requests are taken most urgent first; for the most urgent one's slack (less
    ``return_margin_ms``) and the windows still waiting under its mode, ``holmes.slackfit.SlackFitPolicy`` picks (subnet, batch of windows); the most urgent
    requests that fit the batch run on that subnet, and the loop repeats for the rest. ``mode`` "largest" / "smallest" are the fixed baselines.

At start the replica profiles every subnet at batch 1, 2, 4, ... ``max_windows`` on its own thread(s) (the
offline half of SlackFit); ``info()`` reports the profile, the memory of the weights and whether every subnet's
tensors are views of the one storage.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from ray import serve

from holmes.slackfit import MODES, SlackFitPolicy
from models.ensemble import Shared, head
from models.errors import InvalidFieldError
from models.member import check_output

from .members import _per_request, set_torch_threads
from .schema import as_serve_error

PROFILE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)


def load_subnets(source: Any) -> dict:
    """{name: SubnetMember} from ``{"registry_dir", "registry_version", "names"}`` (every subnet of the version
    when ``names`` is None) or from a list of SubnetMember objects. They must share one supernet."""
    if isinstance(source, dict):
        from models.registry import Registry

        reg = Registry(source["registry_dir"])
        version = source.get("registry_version") or reg.latest()
        kinds = {p["name"]: p["kind"] for p in reg.profiles(version)}
        names = source.get("names") or [n for n, k in kinds.items() if k == "subnet"]
        wrong = [n for n in names if kinds.get(n) != "subnet"]
        if wrong:
            raise InvalidFieldError("names", f"must be subnet members of registry {reg.path} {version}", wrong)
        members = [reg.load(n, version=version) for n in names]
        accuracy = {p["name"]: float(p["cv"]["score"]) for p in reg.profiles(version) if p["name"] in names}
    else:
        members = list(source)
        missing = [m.name for m in members if not hasattr(m, "accuracy_")]
        if missing:  # without accuracies SlackFit's front would collapse to one subnet
            raise InvalidFieldError("accuracy_", "must be set on every subnet member passed as an object (its nested-CV "
                                    "score)", missing)
        accuracy = {m.name: m.accuracy_ for m in members}
    if not members:
        raise InvalidFieldError("source", "must name at least one subnet member", source)
    nets = {id(m.supernet) for m in members}
    if len(nets) != 1:
        raise InvalidFieldError("source", "must hold subnets of one supernet", sorted(m.name for m in members))
    out = {m.name: m for m in members}
    for m in members:
        m.accuracy_ = accuracy[m.name]
    return out


def profile_subnets(members: dict, batches=PROFILE_BATCHES, repeats: int = 5) -> dict[str, dict[int, float]]:
    """Median service time (ms) of each subnet's head on preprocessed windows, per batch size."""
    from models.preprocess import preprocess
    from models.profile import example_batch

    any_member = next(iter(members.values()))
    w, m, t = example_batch(max(batches), any_member)
    prep = preprocess(w, m)
    out: dict[str, dict[int, float]] = {}
    for name, member in members.items():
        out[name] = {}
        for b in batches:
            sub = tuple(x[:b] for x in prep)
            member.proba_from_preprocessed(sub, t[:b])  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                member.proba_from_preprocessed(sub, t[:b])
                times.append((time.perf_counter() - t0) * 1e3)
            out[name][b] = round(statistics.median(times), 4)
    return out


@serve.deployment(max_ongoing_requests=512)
class SupernetModel:
    def __init__(self, source: Any, torch_threads: int = 1, max_batch_size: int = 64, batch_wait_timeout_s: float = 0.0,
                 profile_repeats: int = 5, max_windows: int | None = None, return_margin_ms: float = 10.0):
        """``max_batch_size``: requests merged by ``@serve.batch``; ``max_windows``: the largest batch of windows
        profiled and run on one subnet at once (default ``max_batch_size``); ``return_margin_ms``: taken off each
        request's slack for the way back to the caller (Ray's response path)."""
        set_torch_threads(torch_threads)
        self.subnets = load_subnets(source)
        self.supernet = next(iter(self.subnets.values())).supernet
        batches = tuple(b for b in PROFILE_BATCHES if b <= (max_windows or max_batch_size))
        self.latency_ms = profile_subnets(self.subnets, batches, profile_repeats)
        self.return_margin_ms = float(return_margin_ms)
        accuracy = {n: m.accuracy_ for n, m in self.subnets.items()}
        self.policies = {mode: SlackFitPolicy(self.latency_ms, accuracy, mode) for mode in MODES}
        for f in (self._heads, self._slackfit):
            f.set_max_batch_size(max_batch_size)
            f.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def info(self) -> dict:
        from models.subnet import tensor_bytes

        base = {t.untyped_storage().data_ptr() for t in list(self.supernet.parameters()) + list(self.supernet.buffers())}
        shared = all(v.untyped_storage().data_ptr() in base  # the kept views that serve, every subnet
                     for m in self.subnets.values() for v in self.supernet.weight_views(m.subnet))
        p = self.policies["slackfit"]
        return {"name": "supernet", "kind": "subnet", "needs": "cnn", "subnets": sorted(self.subnets),
                "latency_ms": self.latency_ms, "accuracy": {n: m.accuracy_ for n, m in self.subnets.items()},
                "front": p.subnets, "bucket_edges_ms": p.bucket_edges_ms, "weights_bytes": tensor_bytes(self.supernet),
                "views_share_storage": shared}

    async def heads(self, shared, alarm_types, member: str):
        """(probabilities, service_ms, merged) of the subnet ``member`` on one request's shared work."""
        if member not in self.subnets:  # checked per request, before merging: a bad request fails alone
            raise as_serve_error(InvalidFieldError("member", "must be a subnet this deployment serves", member, sorted(self.subnets)))
        return await self._heads(shared, alarm_types, member)

    async def slackfit(self, shared, alarm_types, deadline_unix_s: float, mode: str = "slackfit") -> dict:
        """SlackFit serving of one request (merged with others by ``@serve.batch``): {"probabilities", "subnet",
        "batch" (windows run together), "slack_ms", "service_ms", "queued" (windows waiting)}."""
        if mode not in self.policies:
            raise as_serve_error(InvalidFieldError("mode", "must be a SlackFit mode", mode, list(MODES)))
        if not isinstance(deadline_unix_s, (int, float)) or not math.isfinite(deadline_unix_s):
            raise as_serve_error(InvalidFieldError("deadline_unix_s", "must be a finite time (s since the epoch)", deadline_unix_s))
        if getattr(shared, "prep", None) is None or len(shared) != len(alarm_types):
            raise as_serve_error(InvalidFieldError("shared", "must hold the CNN preprocessing of one alarm type per window",
                                                   type(shared).__name__))
        return await self._slackfit(shared, alarm_types, float(deadline_unix_s), mode)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def _heads(self, shared: list, alarm_types: list, member: list) -> list:
        t0 = time.perf_counter()
        out: list = [None] * len(shared)
        for name in dict.fromkeys(member):
            idx = [i for i, n in enumerate(member) if n == name]
            p = head(self.subnets[name], Shared.concat([shared[i] for i in idx]), [t for i in idx for t in alarm_types[i]])
            for i, part in zip(idx, _per_request(p, [len(shared[i]) for i in idx], 0.0)):
                out[i] = part
        ms = (time.perf_counter() - t0) * 1000.0
        return [(p, ms, len(shared)) for p, _, _ in out]

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def _slackfit(self, shared: list, alarm_types: list, deadline_unix_s: list, mode: list) -> list:
        order = sorted(range(len(shared)), key=lambda i: deadline_unix_s[i])
        out: list = [None] * len(shared)
        while order:
            now = time.time()
            first = order[0]
            slack_ms = (deadline_unix_s[first] - now) * 1000.0 - self.return_margin_ms
            same = [i for i in order if mode[i] == mode[first]]  # requests of another mode are not run by this one's policy
            queued = sum(len(shared[i]) for i in same)  # windows waiting
            subnet, b = self.policies[mode[first]].choose(slack_ms, queued)
            # the most urgent requests whose windows fit the batch; a request is never split, so one larger than
            # the batch runs whole (beyond the profiled size)
            take, windows = [], 0
            for i in same:
                if take and windows + len(shared[i]) > b:
                    break
                take.append(i)
                windows += len(shared[i])
            taken = set(take)
            order = [i for i in order if i not in taken]
            member = self.subnets[subnet]
            t0 = time.perf_counter()
            batch = Shared.concat([shared[i] for i in take])
            p = check_output(subnet, member.proba_from_preprocessed(batch.prep, [t for i in take for t in alarm_types[i]]), len(batch))
            ms = (time.perf_counter() - t0) * 1000.0
            start = 0
            for i in take:
                n = len(shared[i])
                out[i] = {"probabilities": p[start : start + n], "subnet": subnet, "batch": len(batch), "slack_ms": slack_ms,
                          "service_ms": ms, "queued": queued}
                start += n
        return out
