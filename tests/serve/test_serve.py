"""The HOLMES Ray Serve application on a real Ray instance: handle and HTTP paths, bad requests."""

from __future__ import annotations

import math

import numpy as np

from models.calibration import Calibrator
import pytest
import requests

from deploy.schema import encode_windows
from models.errors import InvalidFieldError


def _reference(members, names, w, m, a):
    return np.mean([members[n].predict_proba(w, m, a) for n in names], axis=0)


class TestHandle:
    def test_batch_scored_by_policy_choice(self, service, members, batch):
        handle, _ = service
        w, m, a = batch
        out = handle.score.remote(w, m, a, 5000.0).result()
        assert out["ensemble"]["name"] == "both" and out["fits_deadline"]
        np.testing.assert_allclose(out["probabilities"], _reference(members, ["stats_all", "stats_ecg"], w, m, a), atol=1e-12)
        np.testing.assert_array_equal(out["raw_probabilities"], out["probabilities"])  # a row without a map publishes the mean
        assert out["verdicts"].tolist() == (out["probabilities"] >= 0.4).tolist()
        lat = out["latency_ms"]
        assert set(lat["members"]) == {"stats_all", "stats_ecg"} and lat["fanout"] > 0
        assert lat["ingress_total"] >= lat["fanout"]

    def test_requested_ensemble(self, service, members, batch):
        handle, _ = service
        w, m, a = batch
        out = handle.score.remote(w[:8], m[:8], a[:8], 5000.0, "ecg_only").result()
        assert out["ensemble"]["members"] == ["stats_ecg"] and out["requested_ensemble"]
        raw = members["stats_ecg"].predict_proba(w[:8], m[:8], a[:8])
        np.testing.assert_allclose(out["raw_probabilities"], raw, atol=1e-12)
        # published through the plan row's calibration map; the verdict stays the threshold on the raw mean
        np.testing.assert_allclose(out["probabilities"], Calibrator.from_dict({"method": "platt", "a": 2.0, "b": -0.5}).transform(raw), atol=1e-12)
        assert out["verdicts"].tolist() == (raw >= 0.4).tolist()

    def test_tight_deadline_falls_to_cheaper(self, service, batch):
        handle, _ = service
        w, m, a = batch
        out = handle.score.remote(w, m, a, 0.5).result()
        assert out["ensemble"]["name"] != "both" and not out["fits_deadline"]

    def test_concurrent_requests_are_merged_and_correct(self, service, members, batch):
        handle, _ = service
        w, m, a = batch
        resps = [handle.score.remote(w[i * 8 : (i + 1) * 8], m[i * 8 : (i + 1) * 8], a[i * 8 : (i + 1) * 8], 5000.0, "both") for i in range(8)]
        outs = [r.result() for r in resps]
        got = np.concatenate([o["probabilities"] for o in outs])
        np.testing.assert_allclose(got, _reference(members, ["stats_all", "stats_ecg"], w, m, a), atol=1e-12)

    def test_bad_input_raises_typed_error(self, service, batch):
        handle, _ = service
        w, m, a = batch
        with pytest.raises(InvalidFieldError, match="deadline_ms"):
            handle.score.remote(w[:2], m[:2], a[:2], -1.0).result()
        with pytest.raises(InvalidFieldError, match="ensemble"):
            handle.score.remote(w[:2], m[:2], a[:2], 100.0, "nope").result()

    def test_serve_scorer_for_the_stream_consumer(self, service, members, batch):
        import time

        from deploy.scorer import ServeScorer
        from streams.scorer import WindowBatch, make_scorer

        handle, _ = service
        w, m, a = batch
        now = time.time()
        wb = WindowBatch([f"p{i}" for i in range(16)], np.arange(16.0), w[:16], m[:16], a[:16], np.zeros(16, bool),
                         np.full(16, now), np.full(16, now + 10.0))
        scorer = make_scorer("serve", handle=handle, max_request_windows=6)  # 3 requests in flight together
        assert isinstance(scorer, ServeScorer)
        scores = scorer.score(wb)
        ref = _reference(members, ["stats_all", "stats_ecg"], w[:16], m[:16], a[:16])
        assert [s.models for s in scores] == [("plan:both", "stats_all", "stats_ecg")] * 16  # the plan row, then its members
        np.testing.assert_allclose([s.probability for s in scores], ref, atol=1e-12)


class TestHTTP:
    def test_healthz_and_ensembles(self, service):
        _, url = service
        h = requests.get(f"{url}/healthz", timeout=30).json()
        assert h["status"] == "ok" and h["members"] == ["stats_all", "stats_ecg"]
        e = requests.get(f"{url}/v1/ensembles", timeout=30).json()
        assert [x["name"] for x in e["ensembles"]] == ["both", "all_only", "ecg_only"]

    def test_score_b64_and_json_lists(self, service, members, batch):
        _, url = service
        w, m, a = batch
        body = {**encode_windows(w[:4]), "masks": m[:4].tolist(), "alarm_types": a[:4], "deadline_ms": 5000}
        r = requests.post(f"{url}/v1/score", json=body, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        np.testing.assert_allclose(out["probabilities"], _reference(members, ["stats_all", "stats_ecg"], w[:4], m[:4], a[:4]), atol=1e-6)
        assert out["ensemble"]["name"] == "both" and "fanout" in out["latency_ms"]
        lists = [[[None if math.isnan(v) else float(v) for v in ch] for ch in win] for win in w[:1]]
        r = requests.post(f"{url}/v1/score", json={"windows": lists, "alarm_types": a[:1], "deadline_ms": 5000}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["probabilities"][0] == pytest.approx(out["probabilities"][0], abs=1e-6)

    @pytest.mark.parametrize(
        "change, field",
        [
            ({"shape": [4, 3, 4000]}, "windows_b64"),
            ("wrong_shape", "windows"),
            ("nan_window", "windows[0]"),
            ({"deadline_ms": -5}, "deadline_ms"),
            ({"ensemble": "nope"}, "ensemble"),
            ({"alarm_types": ["Sneeze"] * 4}, "alarm_types"),
            ({"masks": [[True] * 5] * 3}, "masks"),
            ({"deadline_ms": "soon"}, "deadline_ms"),
            ({"extra_field": 1}, "extra_field"),
        ],
    )
    def test_bad_request_is_4xx_naming_field_and_service_keeps_serving(self, service, batch, change, field):
        _, url = service
        w, m, a = batch
        body = {**encode_windows(w[:4]), "alarm_types": a[:4], "deadline_ms": 1000}
        if change == "wrong_shape":
            body.update(encode_windows(w[:4, :3]))
        elif change == "nan_window":
            bad = w[:4].copy()
            bad[0] = np.nan
            body.update(encode_windows(bad))
        else:
            body.update(change)
        r = requests.post(f"{url}/v1/score", json=body, timeout=60)
        assert 400 <= r.status_code < 500, r.text
        detail = r.json()["detail"]
        assert detail["field"] == field and field in detail["message"]
        ok = requests.post(f"{url}/v1/score", json={**encode_windows(w[:2]), "alarm_types": a[:2], "deadline_ms": 5000}, timeout=60)
        assert ok.status_code == 200

    def test_nan_deadline_in_raw_json(self, service, batch):
        _, url = service
        w, m, a = batch
        import json

        body = json.dumps({**encode_windows(w[:2]), "alarm_types": a[:2], "deadline_ms": float("nan")})
        r = requests.post(f"{url}/v1/score", data=body, headers={"content-type": "application/json"}, timeout=60)
        assert 400 <= r.status_code < 500 and "deadline_ms" in r.text
