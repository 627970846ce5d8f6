"""Messages on the ICU topics and their wire formats, with strict validation on decode.

``icu.waveforms``  key = patient id, value = ``WaveformChunk`` in a compact versioned binary encoding:

    offset  size  field
    0       4     magic b"HWAV"
    4       1     version (1)
    5       1     n_channels (1..8)
    6       2     n_samples per channel (1..2500)
    8       4     seq (chunk number since the stream's sample 0; chunk k starts at sample k * n_samples)
    12      8     fs_hz (float64)
    20      8     t0_s (float64, stream time of the first sample = seq * n_samples / fs_hz)
    28      8     capture_unix_s (float64, wall clock at which the chunk's last sample was taken)
    36      1     len(patient id), then the id (UTF-8)
    ..      2     len(channel names), then the names joined by "," (UTF-8)
    ..      4*C*N samples, float32 little-endian, channel-major [n_channels, n_samples]

``icu.alarms``     key = patient id, value = ``AlarmEvent`` as one JSON object.
``icu.risk``       key = patient id, value = ``RiskScore`` as one JSON object (readable by any Kafka tool).
``icu.deadletter`` key = original key, value = the original bytes, headers ``reason``, ``field``, ``topic``.

Every decoder raises ``models.errors.InvalidFieldError`` naming the field, the rule and the value.

>>> c = WaveformChunk("p1", 0, 0.0, 250.0, ("II", "ABP"), np.zeros((2, 250), np.float32) + 1, 10.0)
>>> decode_chunk(encode_chunk(c), key=b"p1").channel_names
('II', 'ABP')
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from models.data import FS_HZ
from models.errors import InvalidFieldError

MAGIC = b"HWAV"
WAVEFORM_VERSION = 1
SUPPORTED_VERSIONS = (1,)
JSON_VERSION = 1
MAX_CHANNELS = 8
MAX_SAMPLES = 2500  # 10 s at 250 Hz per chunk
MAX_MESSAGE_BYTES = 128 * 1024
MAX_ID_CHARS = 64
_HEAD = struct.Struct("<4sBBHIddd")


@dataclass(frozen=True)
class WaveformChunk:
    """About one second of every channel of one patient. ``samples`` is float32 [n_channels, n_samples]."""

    patient_id: str
    seq: int
    t0_s: float
    fs_hz: float
    channel_names: tuple[str, ...]
    samples: np.ndarray
    capture_unix_s: float

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])


@dataclass(frozen=True)
class AlarmEvent:
    """A bedside monitor alarm. ``alarm_type`` may be unknown to the models: it is answered, marked degraded."""

    patient_id: str
    time_s: float
    alarm_type: str
    capture_unix_s: float = 0.0


@dataclass(frozen=True)
class RiskScore:
    """One scored window (``window_end_s`` in stream seconds). ``verdict`` is set when it answers an alarm."""

    patient_id: str
    window_end_s: float
    window_s: float
    stage: int
    probability: float | None
    positive: bool | None
    alarm_type: str  # the alarm context the models were given
    models: list[str]
    scorer: str
    verdict: bool | None = None
    alarm_time_s: float | None = None
    degraded: bool = False
    degraded_reasons: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    sample_unix_s: float = 0.0
    published_unix_s: float = 0.0
    risk_alarm: bool | None = None  # the patient's continuous-risk alarm after hysteresis (streams.hysteresis)
    v: int = JSON_VERSION

    @property
    def key(self) -> tuple[str, float]:
        """De-duplication key: one score per (patient, window end)."""
        return (self.patient_id, round(self.window_end_s, 6))


def _check_id(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not (1 <= len(value) <= MAX_ID_CHARS) or not value.isprintable():
        raise InvalidFieldError(field_name, f"must be a printable string of 1..{MAX_ID_CHARS} characters", value)
    return value


def encode_chunk(chunk: WaveformChunk) -> bytes:
    samples = np.ascontiguousarray(chunk.samples, dtype="<f4")
    if samples.ndim != 2 or samples.shape[0] != len(chunk.channel_names):
        raise InvalidFieldError("samples", "must have shape [n_channels, n_samples]", getattr(samples, "shape", None))
    pid = chunk.patient_id.encode()
    names = ",".join(chunk.channel_names).encode()
    head = _HEAD.pack(MAGIC, WAVEFORM_VERSION, samples.shape[0], samples.shape[1], chunk.seq, chunk.fs_hz, chunk.t0_s, chunk.capture_unix_s)
    return b"".join((head, struct.pack("<B", len(pid)), pid, struct.pack("<H", len(names)), names, samples.tobytes()))


def decode_chunk(data: bytes, key: bytes | None = None, fs_hz: float = FS_HZ) -> WaveformChunk:
    """Decode and validate one waveform message; ``key`` (the Kafka key) must equal the patient id."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidFieldError("message", "must be bytes", type(data).__name__)
    size = len(data)
    if size > MAX_MESSAGE_BYTES:
        raise InvalidFieldError("message", f"must be at most {MAX_MESSAGE_BYTES} bytes", size)
    if size < _HEAD.size + 3:
        raise InvalidFieldError("message", f"must be at least {_HEAD.size + 3} bytes", size)
    magic, version, n_ch, n_s, seq, msg_fs, t0_s, capture = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise InvalidFieldError("magic", f"must be {MAGIC!r}", bytes(magic))
    if version not in SUPPORTED_VERSIONS:
        raise InvalidFieldError("version", "must be a supported waveform version", version, SUPPORTED_VERSIONS)
    if not 1 <= n_ch <= MAX_CHANNELS:
        raise InvalidFieldError("n_channels", f"must be in 1..{MAX_CHANNELS}", n_ch)
    if not 1 <= n_s <= MAX_SAMPLES:
        raise InvalidFieldError("n_samples", f"must be in 1..{MAX_SAMPLES}", n_s)
    if msg_fs != fs_hz:
        raise InvalidFieldError("fs_hz", f"must be {fs_hz:g}", msg_fs)
    if not math.isfinite(capture):
        raise InvalidFieldError("capture_unix_s", "must be finite", capture)
    if not math.isfinite(t0_s) or abs(t0_s - seq * n_s / msg_fs) > 1e-6:
        raise InvalidFieldError("t0_s", f"must equal seq * n_samples / fs_hz = {seq * n_s / msg_fs:g}", t0_s)
    pos = _HEAD.size
    n_pid = data[pos]
    pos += 1
    try:
        pid = bytes(data[pos : pos + n_pid]).decode()
        pos += n_pid
        (n_names,) = struct.unpack_from("<H", data, pos)
        pos += 2
        names = tuple(bytes(data[pos : pos + n_names]).decode().split(","))
    except (UnicodeDecodeError, struct.error) as e:
        raise InvalidFieldError("header", "must hold a UTF-8 patient id and channel names", str(e)) from None
    pos += n_names
    _check_id(pid, "patient_id")
    if key is not None and key != pid.encode():
        raise InvalidFieldError("key", f"must equal the patient id {pid!r}", key)
    if len(names) != n_ch or any(not n or len(n) > 16 for n in names):
        raise InvalidFieldError("channel_names", f"must be {n_ch} non-empty names of <= 16 characters", names)
    payload = size - pos
    if payload != 4 * n_ch * n_s:
        raise InvalidFieldError("samples", f"must be {n_ch} x {n_s} float32 = {4 * n_ch * n_s} bytes", payload)
    samples = np.frombuffer(data, dtype="<f4", count=n_ch * n_s, offset=pos).reshape(n_ch, n_s)
    if not np.isfinite(samples).all():  # one pass in the usual case (every sample finite); the rules below otherwise
        if not np.isfinite(samples).any():
            raise InvalidFieldError("samples", "must contain at least one finite value (all NaN)", "NaN-only")
        if np.isinf(samples).any():
            raise InvalidFieldError("samples", "must be finite or NaN (a gap)", "inf")
    return WaveformChunk(pid, int(seq), float(t0_s), float(msg_fs), names, samples, float(capture))


def _json_obj(data: bytes, what: str, required: dict[str, tuple[type, ...]]) -> dict:
    if len(data) > 64 * 1024:
        raise InvalidFieldError(what, "must be at most 65536 bytes", len(data))
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidFieldError(what, "must be one JSON object", str(e)[:80]) from None
    if not isinstance(obj, dict):
        raise InvalidFieldError(what, "must be one JSON object", type(obj).__name__)
    if obj.get("v") != JSON_VERSION:
        raise InvalidFieldError("v", "must be a supported version", obj.get("v"), [JSON_VERSION])
    for k, types in required.items():
        if k not in obj or isinstance(obj[k], bool) and bool not in types or not isinstance(obj[k], types):
            raise InvalidFieldError(k, f"must be present as {'/'.join(t.__name__ for t in types)}", obj.get(k))
    return obj


def encode_alarm(ev: AlarmEvent) -> bytes:
    return json.dumps({"v": JSON_VERSION, **asdict(ev)}, separators=(",", ":")).encode()


def decode_alarm(data: bytes, key: bytes | None = None) -> AlarmEvent:
    obj = _json_obj(data, "alarm", {"patient_id": (str,), "time_s": (int, float), "alarm_type": (str,)})
    extra = set(obj) - {"v", "patient_id", "time_s", "alarm_type", "capture_unix_s"}
    if extra:
        raise InvalidFieldError("alarm", "must not have unknown keys", sorted(extra))
    pid = _check_id(obj["patient_id"], "patient_id")
    if key is not None and key != pid.encode():
        raise InvalidFieldError("key", f"must equal the patient id {pid!r}", key)
    t = float(obj["time_s"])
    if not math.isfinite(t) or t < 0:
        raise InvalidFieldError("time_s", "must be a finite time >= 0", obj["time_s"])
    _check_id(obj["alarm_type"], "alarm_type")
    cap = obj.get("capture_unix_s", 0.0)
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap):
        raise InvalidFieldError("capture_unix_s", "must be a finite number", cap)
    return AlarmEvent(pid, t, obj["alarm_type"], float(cap))


_RISK_FIELDS = tuple(f.name for f in fields(RiskScore))
_RISK_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode_risk(score: RiskScore) -> bytes:
    # The same bytes as json.dumps(asdict(score), ...), without asdict's recursive deep copy (every field is
    # a JSON value: str, number, bool, None, a list of str or a dict of numbers), once per published window.
    return _RISK_ENCODER.encode({k: getattr(score, k) for k in _RISK_FIELDS}).encode()


def decode_risk(data: bytes) -> RiskScore:
    obj = _json_obj(data, "risk", {"patient_id": (str,), "window_end_s": (int, float), "stage": (int,), "scorer": (str,)})
    names = set(RiskScore.__dataclass_fields__)
    extra = set(obj) - names
    if extra:
        raise InvalidFieldError("risk", "must not have unknown keys", sorted(extra))
    p = obj.get("probability")
    if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0):
        raise InvalidFieldError("probability", "must be null or a number in [0, 1]", p)
    return RiskScore(**obj)
