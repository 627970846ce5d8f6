"""Wire formats: round trips and strict, typed validation on decode."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from models.errors import InvalidFieldError
from streams.schemas import (MAX_MESSAGE_BYTES, AlarmEvent, RiskScore, WaveformChunk, decode_alarm, decode_chunk,
                             decode_risk, encode_alarm, encode_chunk, encode_risk)


def _chunk(**kw) -> WaveformChunk:
    base = dict(patient_id="p1", seq=3, t0_s=3.0, fs_hz=250.0, channel_names=("II", "V", "ABP"),
                samples=np.random.default_rng(0).normal(size=(3, 250)).astype(np.float32), capture_unix_s=1.5e9)
    base.update(kw)
    return WaveformChunk(**base)


class TestWaveformChunk:
    def test_round_trip_is_bit_exact_and_compact(self):
        c = _chunk()
        c.samples[1, 10:20] = np.nan
        raw = encode_chunk(c)
        d = decode_chunk(raw, key=b"p1")
        assert (d.patient_id, d.seq, d.t0_s, d.fs_hz, d.channel_names) == ("p1", 3, 3.0, 250.0, ("II", "V", "ABP"))
        assert d.samples.dtype == np.float32
        assert np.array_equal(d.samples, c.samples, equal_nan=True)
        assert len(raw) < 3 * 250 * 4 + 64  # float32 payload plus a small header, not JSON

    @pytest.mark.parametrize("mutate, field", [
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + bytes([9]) + b[5:], "version"),
        (lambda b: b[:12] + struct.pack("<d", 360.0) + b[20:], "fs_hz"),
        (lambda b: b[:20] + struct.pack("<d", 7.0) + b[28:], "t0_s"),
        (lambda b: b[:5] + bytes([4]) + b[6:], "channel_names"),
        (lambda b: b[:-8], "samples"),
        (lambda b: b[:30], "message"),
        (lambda b: b + b"\0" * MAX_MESSAGE_BYTES, "message"),
    ])
    def test_malformed_is_rejected_naming_the_field(self, mutate, field):
        with pytest.raises(InvalidFieldError) as e:
            decode_chunk(mutate(encode_chunk(_chunk())), key=b"p1")
        assert e.value.field == field

    def test_nan_only_inf_and_key_mismatch(self):
        with pytest.raises(InvalidFieldError, match="finite") as e:
            decode_chunk(encode_chunk(_chunk(samples=np.full((3, 250), np.nan, np.float32))))
        assert e.value.field == "samples"
        s = np.ones((3, 250), np.float32)
        s[0, 0] = np.inf
        with pytest.raises(InvalidFieldError, match="inf"):
            decode_chunk(encode_chunk(_chunk(samples=s)))
        with pytest.raises(InvalidFieldError) as e:
            decode_chunk(encode_chunk(_chunk()), key=b"someone-else")
        assert e.value.field == "key"


class TestEvents:
    def test_alarm_round_trip_and_validation(self):
        ev = AlarmEvent("p1", 300.0, "Asystole", 1.0)
        assert decode_alarm(encode_alarm(ev), key=b"p1") == ev
        for bad, field in [(b"{not json", "alarm"), (b"[1]", "alarm"), (json.dumps({"v": 2}).encode(), "v"),
                           (json.dumps({"v": 1, "patient_id": "p", "time_s": -1, "alarm_type": "x"}).encode(), "time_s"),
                           (json.dumps({"v": 1, "patient_id": "p", "time_s": True, "alarm_type": "x"}).encode(), "time_s"),
                           (json.dumps({"v": 1, "patient_id": "p", "time_s": 1, "alarm_type": "x", "z": 1}).encode(), "alarm")]:
            with pytest.raises(InvalidFieldError) as e:
                decode_alarm(bad)
            assert e.value.field == field, bad

    def test_risk_is_one_readable_json_object(self):
        r = RiskScore("p1", 300.0, 16.0, 1, 0.91, True, "Asystole", ["m"], "member:m", verdict=True, alarm_time_s=300.0,
                      latency_ms={"score_ms": 3.0})
        raw = encode_risk(r)
        obj = json.loads(raw)
        assert obj["verdict"] is True and obj["probability"] == 0.91 and obj["v"] == 1
        assert decode_risk(raw) == r and r.key == ("p1", 300.0)
        with pytest.raises(InvalidFieldError) as e:
            decode_risk(raw.replace(b"0.91", b"1.5"))
        assert e.value.field == "probability"
