"""One Ray Serve replica serves every subnet of the committed supernet: plan rows that name subnets, SlackFit,
concurrent requests for different subnets."""

from __future__ import annotations

import time

import numpy as np
import pytest

WINDOW_S = 16.0


@pytest.fixture(scope="module")
def subnet_names():
    from models.registry import Registry

    reg = Registry()
    names = [p["name"] for p in reg.profiles() if p["kind"] == "subnet"]
    assert len(names) >= 10, "the committed registry must hold the supernet's subnets"
    return reg, names


@pytest.fixture(scope="module")
def supernet_app(service, subnet_names):
    """The SupernetModel deployment alone (every subnet of the committed registry, profiled up to batch 16)."""
    from ray import serve

    from deploy.supernet import SupernetModel

    reg, names = subnet_names
    app = SupernetModel.options(name="supernet", ray_actor_options={"num_cpus": 0.2}).bind(
        {"registry_dir": str(reg.path), "registry_version": reg.latest(), "names": None}, 1, 16, 0.0, 2)
    handle = serve.run(app, name="supernet_test", route_prefix=None)
    yield handle
    serve.delete("supernet_test")


def test_one_replica_holds_every_subnet_on_shared_storage(supernet_app, subnet_names):
    _, names = subnet_names
    info = supernet_app.info.remote().result(timeout_s=300)
    assert sorted(info["subnets"]) == sorted(names)
    assert info["views_share_storage"] is True
    assert set(info["latency_ms"][names[0]]) == {1, 2, 4, 8, 16}
    assert 0.05 < info["weights_bytes"] / 2**20 < 5
    assert info["front"] and all(n in names for n in info["front"])


def test_concurrent_requests_for_different_subnets_equal_sequential(supernet_app, subnet_names, batch):
    from models.ensemble import prepare

    reg, names = subnet_names
    w, m, a = batch
    shared = prepare(w[:8], m[:8], {"cnn"})
    picks = names[:: max(1, len(names) // 6)]
    expected = {n: reg.load(n).proba_from_preprocessed(shared.prep, a[:8]) for n in picks}
    responses = [(n, supernet_app.heads.remote(shared, a[:8], n)) for n in picks * 3]  # in flight together
    for n, r in responses:
        p, service_ms, merged = r.result(timeout_s=120)
        np.testing.assert_allclose(p, expected[n], rtol=0, atol=1e-6)


def test_slackfit_modes(supernet_app, subnet_names, batch):
    from models.ensemble import prepare

    reg, _ = subnet_names
    info = supernet_app.info.remote().result()
    front = info["front"]
    w, m, a = batch
    shared = prepare(w[:1], m[:1], {"cnn"})
    far = time.time() + 30.0
    largest = supernet_app.slackfit.remote(shared, a[:1], far, "largest").result(timeout_s=60)
    smallest = supernet_app.slackfit.remote(shared, a[:1], far, "smallest").result(timeout_s=60)
    slack = supernet_app.slackfit.remote(shared, a[:1], far, "slackfit").result(timeout_s=60)
    assert largest["subnet"] == front[-1] and smallest["subnet"] == front[0]
    assert slack["subnet"] == front[-1]  # one request with plenty of slack: the most accurate subnet
    np.testing.assert_allclose(slack["probabilities"], reg.load(front[-1]).proba_from_preprocessed(shared.prep, a[:1]), atol=1e-6)
    late = supernet_app.slackfit.remote(shared, a[:1], time.time() - 1.0, "slackfit").result(timeout_s=60)
    assert late["subnet"] == front[0] and late["slack_ms"] < 0  # past its deadline: the cheapest, at once
    from models.errors import InvalidFieldError

    good = supernet_app.slackfit.remote(shared, a[:1], far, "slackfit")
    with pytest.raises(InvalidFieldError, match="mode"):  # refused alone, typed, naming the field
        supernet_app.slackfit.remote(shared, a[:1], far, "fastest").result(timeout_s=60)
    with pytest.raises(InvalidFieldError, match="deadline_unix_s"):
        supernet_app.slackfit.remote(shared, a[:1], None, "slackfit").result(timeout_s=60)
    with pytest.raises(InvalidFieldError, match="member"):
        supernet_app.heads.remote(shared, a[:1], "cnn-ecg-w8-d2").result(timeout_s=60)
    assert good.result(timeout_s=60)["subnet"] in front


def test_plan_rows_can_name_subnets(service, subnet_names, batch):
    """The HOLMES ingress serves a subnet alone and an ensemble of subnets and a feature model, from one
    supernet replica; the answers equal the same ensemble in process."""
    from ray import serve

    from deploy import ServeConfig, build
    from holmes.compose.plan import EnsembleSpec, Plan
    from models.ensemble import EnsembleModel

    reg, names = subnet_names
    version = reg.latest()
    two = (names[0], names[-1])
    members = two + ("features-vote",)
    kinds = {n: reg.profile(n, version)["kind"] for n in members}
    plan = Plan((EnsembleSpec("subnet_alone", (two[0],), score=55.0, auroc=0.8),
                 EnsembleSpec("mixed", members, score=70.0, auroc=0.9)),
                {n: {"1": 3.0, "64": 40.0} for n in members}, {}, {}, {"version": version}, kinds)
    config = ServeConfig(registry_dir=str(reg.path), registry_version=version, member_num_cpus=0.2, ingress_num_cpus=0.2,
                         window_s=WINDOW_S)
    handle = serve.run(build(config, plan), name="holmes_subnets", route_prefix="/subnets")
    try:
        deployments = serve.status().applications["holmes_subnets"].deployments
        assert "supernet" in deployments and sum(d.startswith("member_") for d in deployments) == 1
        w, m, a = batch
        w, m, a = w[:12], m[:12], a[:12]
        for row, names_ in (("subnet_alone", (two[0],)), ("mixed", members)):
            out = handle.score.remote(w, m, a, 10_000.0, row).result(timeout_s=120)
            offline = EnsembleModel(row, [reg.load(n, version) for n in names_]).predict_proba(w, m, a)
            assert out["ensemble"]["members"] == list(names_)
            np.testing.assert_allclose(out["raw_probabilities"], offline, atol=1e-6)
    finally:
        serve.delete("holmes_subnets")
