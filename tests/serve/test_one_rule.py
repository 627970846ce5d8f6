"""One ensemble rule: the same real registry members under the "zoo" rule give the same probability for the same
window offline (``models.ensemble``), as the cascade's costly rung (``unfold.ensemble``) and on the running
service (shared work in the ingress, heads in the member replicas, ``deploy.ingress``)."""

from __future__ import annotations

import numpy as np
import pytest

WINDOW_S = 16.0  # the service tests' window (tests/serve/conftest.py)

MEMBERS = ("cnn-ecg-w8-d2", "cnn-all-w8-d2", "features-vote")  # 2 CNNs + 1 feature model: "zoo" weights 1/4, 1/4, 1/2


@pytest.fixture(scope="module")
def rule_app(service):
    from ray import serve

    from deploy import ServeConfig, build
    from holmes.compose.plan import EnsembleSpec, Plan
    from models.registry import Registry

    reg = Registry()
    version = reg.latest()
    kinds = {m: reg.profile(m, version)["kind"] for m in MEMBERS}
    plan = Plan((EnsembleSpec("zoo3", MEMBERS, rule="zoo", score=70.0, auroc=0.9), EnsembleSpec("mean3", MEMBERS, score=69.0, auroc=0.9)),
                {m: {"1": 5.0, "64": 50.0} for m in MEMBERS}, {}, {}, {"version": version}, kinds)
    config = ServeConfig(registry_dir=str(reg.path), registry_version=version, member_num_cpus=0.2, ingress_num_cpus=0.2,
                         window_s=WINDOW_S)
    handle = serve.run(build(config, plan), name="holmes_rule", route_prefix="/rule")
    yield handle, reg, version, kinds
    serve.delete("holmes_rule")


def test_offline_cascade_and_service_give_the_same_probability(rule_app, batch):
    from deploy.scorer import ServeScorer
    from models.ensemble import EnsembleModel, combine, weights
    from streams.scorer import WindowBatch
    from unfold.ensemble import EnsembleRef

    handle, reg, version, kinds = rule_app
    w, m, a = batch
    w, m, a = w[:24], m[:24], a[:24]
    members = [reg.load(n, version) for n in MEMBERS]
    assert weights(MEMBERS, kinds, "zoo").tolist() == [0.25, 0.25, 0.5]
    offline = EnsembleModel("zoo3", members, "zoo").predict_proba(w, m, a)
    own = {mem.name: mem.predict_proba(w, m, a) for mem in members}  # each member alone, on raw windows
    np.testing.assert_allclose(offline, 0.25 * own[MEMBERS[0]] + 0.25 * own[MEMBERS[1]] + 0.5 * own[MEMBERS[2]], atol=1e-6)
    assert not np.allclose(offline, combine(own, kinds, "mean", MEMBERS), atol=1e-3)  # the rule matters on these windows
    cascade = EnsembleRef("zoo3", MEMBERS, "zoo", str(reg.path), version).load().predict_proba(w, m, a)
    served = handle.score.remote(w, m, a, 10_000.0, "zoo3").result(timeout_s=120)
    assert served["ensemble"]["rule"] == "zoo" and served["latency_ms"]["shared_parts"].keys() == {"cnn_preprocess", "features"}
    np.testing.assert_allclose(cascade, offline, atol=1e-6)
    np.testing.assert_allclose(served["raw_probabilities"], offline, atol=1e-6)
    # the same through the stream's scorer (what the cascade's costly rung calls on the service)
    n = len(w)
    wb = WindowBatch([f"p{i}" for i in range(n)], np.full(n, 300.0), w, m, list(a), np.zeros(n, bool), np.zeros(n), np.full(n, np.inf))
    stream = ServeScorer(handle=handle, deadline_ms=10_000.0, raw=True)
    outs = stream.score_arrays(w, m, a, 10_000.0, "zoo3")
    np.testing.assert_allclose(np.concatenate([o["raw_probabilities"] for o in outs]), offline, atol=1e-6)
    assert len(stream.score(wb)) == n


def test_feature_rows_sent_along_are_used_and_checked(rule_app, batch):
    """The cascade's escalations send the feature rows its feature rung extracted: the service uses them instead of
    extracting again (same probabilities), and refuses rows of the wrong shape with a typed error naming ``features``."""
    from deploy.scorer import ServeScorer
    from models.errors import InvalidFieldError
    from models.features import extract_batch

    handle = rule_app[0]
    w, m, a = batch
    w, m, a = w[:12], m[:12], a[:12]
    feats = extract_batch(w, m)
    plain = handle.score.remote(w, m, a, 10_000.0, "zoo3").result(timeout_s=120)
    given = handle.score.remote(w, m, a, 10_000.0, "zoo3", features=feats).result(timeout_s=120)
    assert "features" in plain["latency_ms"]["shared_parts"] and "features_given" in given["latency_ms"]["shared_parts"]
    np.testing.assert_array_equal(given["raw_probabilities"], plain["raw_probabilities"])
    outs = ServeScorer(handle=handle, deadline_ms=10_000.0, raw=True, max_request_windows=5).score_arrays(w, m, a, 10_000.0, "zoo3", feats)
    # requests of 5 windows: the CNN's float sums move (up to ~1e-8 seen) with the batch size, as elsewhere in this file
    np.testing.assert_allclose(np.concatenate([o["raw_probabilities"] for o in outs]), plain["raw_probabilities"], rtol=0, atol=1e-6)
    with pytest.raises(InvalidFieldError, match="features") as e:
        handle.score.remote(w, m, a, 10_000.0, "zoo3", features=feats[:, :10]).result(timeout_s=120)
    assert "[12, 99]" in str(e.value) and "float64[12, 10]" in str(e.value)  # the rule and the value received
