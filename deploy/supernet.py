"""One deployment serves every subnet of the supernet from one replica's weights (SuperServe's SubNetAct).

``SupernetModel`` loads the registry's subnet members (they share one ``models.supernet.Supernet``: one set of
weights in memory) and answers two kinds of call, both merged by ``@serve.batch``:

``heads(shared, alarm_types, member)``
    what the HOLMES ingress calls for a plan row that names subnets: each merged request names its subnet, the
    merged batch is grouped by subnet and each group runs on the shared weights (no copy, no switch state).

``slackfit(shared, alarm_types, deadline_unix_s, mode)``
    SlackFit serving: the merged requests are taken most urgent first; for the most urgent one's slack and the
    windows still waiting, ``holmes.slackfit.SlackFitPolicy`` picks (subnet, batch of windows); the most urgent
    requests that fit the batch run on that subnet, and the loop repeats for the rest. ``mode`` "largest" / "smallest" are the fixed baselines.

At start the replica profiles every subnet at batch 1, 2, 4, ... ``max_batch_size`` on its own thread(s) (the
offline half of SlackFit); ``info()`` reports the profile, the memory of the weights and whether every subnet's
tensors are views of the one storage.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ray import serve

from holmes.slackfit import MODES, SlackFitPolicy
from models.ensemble import Shared, head
from models.errors import InvalidFieldError
from models.member import check_output

from .members import _per_request, set_torch_threads

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
        members = [reg.load(n, version=version) for n in names]
        accuracy = {p["name"]: float(p["cv"]["score"]) for p in reg.profiles(version) if p["name"] in names}
    else:
        members, accuracy = list(source), {}
    if not members:
        raise InvalidFieldError("source", "must name at least one subnet member", source)
    nets = {id(m.supernet) for m in members}
    if len(nets) != 1:
        raise InvalidFieldError("source", "must hold subnets of one supernet", sorted(m.name for m in members))
    out = {m.name: m for m in members}
    for m in members:
        m.accuracy_ = accuracy.get(m.name, getattr(m, "accuracy_", 0.0))
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
        for f in (self.heads, self.slackfit):
            f.set_max_batch_size(max_batch_size)
            f.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def info(self) -> dict:
        from models.supernet import tensor_bytes

        base = {t.untyped_storage().data_ptr() for t in list(self.supernet.parameters()) + list(self.supernet.buffers())}
        shared = all(v.untyped_storage().data_ptr() in base
                     for m in self.subnets.values() for v in self.supernet.weight_views(m.subnet))
        p = self.policies["slackfit"]
        return {"name": "supernet", "kind": "subnet", "needs": "cnn", "subnets": sorted(self.subnets),
                "latency_ms": self.latency_ms, "accuracy": {n: m.accuracy_ for n, m in self.subnets.items()},
                "front": p.subnets, "bucket_edges_ms": p.bucket_edges_ms, "weights_bytes": tensor_bytes(self.supernet),
                "views_share_storage": shared}

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def heads(self, shared: list, alarm_types: list, member: list) -> list:
        """Per merged request: (probabilities, service_ms, merged) of the subnet it names."""
        t0 = time.perf_counter()
        out: list = [None] * len(shared)
        for name in dict.fromkeys(member):
            if name not in self.subnets:
                raise InvalidFieldError("member", "must be a subnet this deployment serves", name, sorted(self.subnets))
            idx = [i for i, n in enumerate(member) if n == name]
            p = head(self.subnets[name], Shared.concat([shared[i] for i in idx]), [t for i in idx for t in alarm_types[i]])
            for i, part in zip(idx, _per_request(p, [len(shared[i]) for i in idx], 0.0)):
                out[i] = part
        ms = (time.perf_counter() - t0) * 1000.0
        return [(p, ms, len(shared)) for p, _, _ in out]

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def slackfit(self, shared: list, alarm_types: list, deadline_unix_s: list, mode: list) -> list:
        """Per merged request: {"probabilities", "subnet", "batch" (windows), "slack_ms", "service_ms", "queued" (windows)}."""
        for m in set(mode):
            if m not in self.policies:
                raise InvalidFieldError("mode", "must be a SlackFit mode", m, list(MODES))
        order = sorted(range(len(shared)), key=lambda i: deadline_unix_s[i])
        out: list = [None] * len(shared)
        while order:
            now = time.time()
            first = order[0]
            slack_ms = (deadline_unix_s[first] - now) * 1000.0 - self.return_margin_ms
            queued = sum(len(shared[i]) for i in order)  # windows waiting
            subnet, b = self.policies[mode[first]].choose(slack_ms, queued)
            n_take, windows = 0, 0  # the most urgent requests whose windows fit the batch (at least one)
            while n_take < len(order) and (n_take == 0 or windows + len(shared[order[n_take]]) <= b):
                windows += len(shared[order[n_take]])
                n_take += 1
            take, order = order[:n_take], order[n_take:]
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
