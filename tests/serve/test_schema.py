"""Request validation and service config, without Ray (the same checks run in the ingress)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from pydantic import ValidationError

from deploy.config import ServeConfig
from deploy.schema import ScoreRequest, ServeInputError, check_deadline, check_request, decode_windows, encode_windows
from models.errors import InvalidFieldError


def test_b64_roundtrip_keeps_nan(batch):
    w = batch[0][:3].copy()
    w[1, 2, :100] = np.nan
    got = decode_windows(ScoreRequest(**encode_windows(w), alarm_types=batch[2][:3]))
    np.testing.assert_array_equal(got, w)  # NaN positions equal too


def test_masks_default_to_finite_slots(batch):
    w, _, a = batch
    ws = w[:2].copy()
    ws[0, 3] = np.nan
    _, m, _ = check_request(ws, None, a[:2], 64)
    assert m[0].tolist() == np.isfinite(ws[0]).any(1).tolist() and not m[0, 3]


@pytest.mark.parametrize("value", [-1, 0, float("nan"), float("inf"), "10", True, None])
def test_deadline_rules(value):
    with pytest.raises(InvalidFieldError, match="deadline_ms"):
        check_deadline(value)


def test_request_rules(batch):
    w, m, a = batch
    with pytest.raises(InvalidFieldError, match="windows"):
        check_request(w[:2, :4], None, a[:2], 64)
    with pytest.raises(InvalidFieldError, match="1..1 windows"):
        check_request(w[:2], None, a[:2], 1)
    with pytest.raises(InvalidFieldError, match="4000 samples"):
        check_request(w[:2, :, :100], None, a[:2], 64, window_s=16.0)
    inf = w[:2].copy()
    inf[1, 0, 5] = np.inf
    with pytest.raises(InvalidFieldError, match="infinite"):
        check_request(inf, None, a[:2], 64)
    with pytest.raises(InvalidFieldError, match="alarm_types"):
        check_request(w[:2], None, a[:1], 64)
    with pytest.raises(InvalidFieldError, match="masks"):
        check_request(w[:2], m[:2].astype(int), a[:2], 64)


def test_bad_base64_and_shape(batch):
    with pytest.raises(InvalidFieldError, match="windows_b64"):
        decode_windows(ScoreRequest(windows_b64="@@@", shape=[1, 5, 4], alarm_types=["Asystole"]))
    with pytest.raises(InvalidFieldError, match="windows_b64 must hold 40"):
        decode_windows(ScoreRequest(windows_b64=base64.b64encode(b"\0" * 16).decode(), shape=[2, 5, 4], alarm_types=["Asystole"] * 2))
    with pytest.raises(InvalidFieldError, match="exactly once"):
        decode_windows(ScoreRequest(alarm_types=["Asystole"]))


def test_serve_error_pickles_with_its_fields():
    import pickle

    e = pickle.loads(pickle.dumps(ServeInputError("deadline_ms", "must be > 0", -1.0)))
    assert isinstance(e, InvalidFieldError) and e.field == "deadline_ms" and "got -1.0" in str(e)


def test_config_rejects_unknown_keys_and_oversized_replicas():
    with pytest.raises(ValidationError, match="registy_dir"):
        ServeConfig(registy_dir="x")
    with pytest.raises(ValidationError, match="member_num_cpus"):
        ServeConfig(member_num_cpus=1.0)


@pytest.mark.parametrize("n_members", [1, 2, 7, 10, 28])
def test_every_replica_fits_the_cluster(n_members):
    c = ServeConfig(cluster_cpus=2.0, ingress_num_cpus=0.25)
    assert 0 < c.member_cpus(n_members) <= 0.25
    assert n_members * c.member_cpus(n_members) + c.ingress_num_cpus <= 2.0
    assert ServeConfig(member_num_cpus=0.5).member_cpus(n_members) == 0.5
