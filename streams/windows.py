"""Decoded messages in, batches of ready windows out: the stream-side state of every patient.

``Windower`` holds one ``PatientBuffer`` per patient and the alarms waiting for their window. Every tick,
``ready()`` returns the windows of all patients that became complete, as one list, and ``committable()``
says up to which offset each partition may be committed without losing a window that is not scored yet.
It knows nothing about Kafka clients, so it is tested and benchmarked without a broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from models.data import ALARM_TYPES, FS_HZ, assign_slots
from models.errors import InvalidFieldError

from .buffer import ACCEPTED, PatientBuffer
from .schemas import AlarmEvent, WaveformChunk

DEFAULT_ALARM_TYPE = "Ventricular_Tachycardia"


@dataclass(frozen=True)
class WindowConfig:
    """Windowing of every patient stream (all in seconds of stream time at ``fs_hz``)."""

    window_s: float = 16.0
    hop_s: float = 1.0
    lateness_s: float = 2.0
    ring_s: float = 40.0
    fs_hz: float = FS_HZ
    idle_evict_s: float = 60.0
    default_alarm_type: str = DEFAULT_ALARM_TYPE

    def __post_init__(self):
        for name in ("window_s", "hop_s", "ring_s", "fs_hz", "idle_evict_s"):
            if not getattr(self, name) > 0:
                raise InvalidFieldError(name, "must be > 0", getattr(self, name))
        if self.lateness_s < 0:
            raise InvalidFieldError("lateness_s", "must be >= 0", self.lateness_s)
        if self.ring_s < self.window_s + self.lateness_s + 2:
            raise InvalidFieldError("ring_s", f"must be >= window_s + lateness_s + 2 = {self.window_s + self.lateness_s + 2}", self.ring_s)
        if self.default_alarm_type not in ALARM_TYPES:
            raise InvalidFieldError("default_alarm_type", "must be a CinC 2015 alarm type", self.default_alarm_type, ALARM_TYPES)

    def n(self, seconds: float) -> int:
        return int(round(seconds * self.fs_hz))


@dataclass
class WindowItem:
    """One window ready to score. ``window`` is float32 [5, window_n]: a private copy, or (``ready(copy=False)``)
    a view of the patient's ring buffer, valid until more chunks of that patient are added (``owned`` False)."""

    patient_id: str
    end_s: float
    window: np.ndarray
    mask: np.ndarray
    alarm_type: str
    sample_unix_s: float
    ready_unix_s: float
    alarm: AlarmEvent | None = None
    degraded_reasons: list[str] = field(default_factory=list)
    partition: int = 0
    first_offset: int = -1  # Kafka offset of the earliest chunk of the window held (re-read from here after a crash)
    alarm_partition: int = 0
    alarm_offset: int = -1
    owned: bool = True  # ``window`` is a private copy (False: a ring-buffer view, see ``materialize``)

    def materialize(self) -> None:
        """Turn a ring-buffer view into a private copy (before the patient's ring moves on)."""
        if not self.owned:
            self.window = self.window.copy()
            self.owned = True


@dataclass(frozen=True)
class LostWindow:
    """A window (or an alarm's window) that cannot be scored from data; published as a degraded score."""

    patient_id: str
    end_s: float
    reason: str
    alarm: AlarmEvent | None
    sample_unix_s: float


@dataclass
class _Alarm:
    event: AlarmEvent
    end_n: int
    partition: int
    offset: int


class Windower:
    def __init__(self, config: WindowConfig | None = None):
        self.config = config or WindowConfig()
        self.patients: dict[str, PatientBuffer] = {}
        self.partition_of: dict[str, int] = {}
        self.alarms: dict[str, list[_Alarm]] = {}
        self.alarm_context: dict[str, list[tuple[int, str]]] = {}  # (alarm sample, type) per patient
        self.dirty: set[str] = set()  # patients that got data since the last tick
        self._backlog: list[WindowItem] = []  # cut early (before the ring would overwrite them), not yet returned
        self._lost: list[LostWindow] = []
        self.counts = {"chunks": 0, "duplicates": 0, "too_late": 0, "gap_windows": 0, "alarms": 0,
                       "unknown_alarm_types": 0, "alarms_unanswerable": 0, "windows_lost": 0, "evicted": 0}

    # ------------------------------------------------------------------ input
    def add_chunk(self, chunk: WaveformChunk, partition: int = 0, offset: int = -1) -> str:
        """Place a validated chunk. Raises InvalidFieldError when it contradicts the patient's stream."""
        cfg = self.config
        buf = self.patients.get(chunk.patient_id)
        if buf is None:
            slots_known = any(s is not None for s in assign_slots(chunk.channel_names)[0])
            if not slots_known:
                raise InvalidFieldError("channel_names", "must include at least one known ECG/ABP/PLETH/RESP channel", chunk.channel_names)
            ring_chunks = -(-cfg.n(cfg.ring_s) // chunk.n_samples)
            buf = PatientBuffer(chunk.patient_id, chunk.channel_names, chunk.n_samples, cfg.n(cfg.window_s), cfg.n(cfg.hop_s),
                                cfg.n(cfg.lateness_s), ring_chunks)
            self.patients[chunk.patient_id] = buf
            self.partition_of[chunk.patient_id] = partition
        else:
            if chunk.channel_names != buf.channel_names:
                raise InvalidFieldError("channel_names", f"must match the patient's stream {buf.channel_names}", chunk.channel_names)
            if chunk.n_samples != buf.chunk_n:
                raise InvalidFieldError("n_samples", f"must match the patient's chunk size {buf.chunk_n}", chunk.n_samples)
        if buf.first_seq >= 0 and (chunk.seq + 1) * buf.chunk_n > buf.next_end_n - buf.window_n + buf.cap_n:
            self._drain(chunk.patient_id, time.time())  # this chunk would overwrite data of windows not cut yet
        status = buf.add(chunk.seq, chunk.samples, offset, chunk.capture_unix_s)
        buf.last_seen_unix_s = time.time()
        if status == ACCEPTED:
            self.counts["chunks"] += 1
            self.dirty.add(chunk.patient_id)
        else:
            self.counts["duplicates" if status == "duplicate" else "too_late"] += 1
        return status

    def add_alarm(self, ev: AlarmEvent, partition: int = 0, offset: int = -1) -> None:
        self.counts["alarms"] += 1
        end_n = self.config.n(ev.time_s)
        self.alarms.setdefault(ev.patient_id, []).append(_Alarm(ev, end_n, partition, offset))
        if ev.alarm_type in ALARM_TYPES:
            hist = self.alarm_context.setdefault(ev.patient_id, [])
            hist.append((end_n, ev.alarm_type))
            hist.sort()
        self.dirty.add(ev.patient_id)

    # ------------------------------------------------------------------ output
    def _item(self, buf: PatientBuffer, end_n: int, now: float, alarm: "_Alarm | None", copy: bool = True) -> WindowItem:
        cfg = self.config
        reasons = []
        gaps = buf.gap_chunks(end_n)
        if gaps:
            self.counts["gap_windows"] += 1
            reasons.append(f"gap: {gaps} chunk(s) missing, NaN-filled")
        # context: the latest known alarm at or before this window's end (causal, so arrival order cannot matter)
        alarm_type = cfg.default_alarm_type
        for t_n, kind in self.alarm_context.get(buf.patient_id, ()):
            if t_n <= end_n:
                alarm_type = kind
        if alarm is not None:
            if alarm.event.alarm_type in ALARM_TYPES:
                alarm_type = alarm.event.alarm_type
            else:
                self.counts["unknown_alarm_types"] += 1
                reasons.append(f"unknown alarm type {alarm.event.alarm_type!r}: scored as {alarm_type}")
        win = buf.cut(end_n)
        if copy:
            win = win.copy()
        mask = buf.mask & buf.window_finite(end_n, win)  # a slot with no finite sample in the window is absent
        offs = buf.chunk_rows(buf.offsets, end_n)
        offs = offs[offs >= 0]
        return WindowItem(buf.patient_id, end_n / cfg.fs_hz, win, mask, alarm_type, buf.capture_of(end_n), now,
                          alarm.event if alarm else None, reasons, self.partition_of.get(buf.patient_id, 0),
                          int(offs.min()) if len(offs) else -1, alarm.partition if alarm else 0, alarm.offset if alarm else -1,
                          copy)

    def earlier(self, item: WindowItem, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(windows [m, 5, n] float32 copies, masks [m, 5]) of ``item``'s patient's windows ending 1..m hops before it
        (m <= ``k``, newest first), while the ring still holds them whole (stops at the first it does not)."""
        cfg = self.config
        buf = self.patients.get(item.patient_id)
        wins, masks = [], []
        end_n = cfg.n(item.end_s)
        for o in range(1, k + 1 if buf is not None else 1):
            e = end_n - o * buf.hop_n
            if buf.window_status(e) != "ready":
                break
            w = buf.cut(e).copy()
            wins.append(w)
            masks.append(buf.mask & buf.window_finite(e, w))
        if not wins:
            return np.empty((0, len(item.mask), item.window.shape[-1]), dtype=np.float32), np.empty((0, len(item.mask)), dtype=bool)
        return np.stack(wins), np.stack(masks)

    def _drain(self, pid: str, now: float, copy: bool = True) -> None:
        """Cut every window of ``pid`` that is ready (or lost) into the backlog (as ring views if not ``copy``)."""
        buf = self.patients.get(pid)
        if buf is None:
            return  # an alarm before any data: kept until the patient's data arrive
        pending = self.alarms.get(pid, [])
        while True:
            status = buf.window_status(buf.next_end_n)
            if status == "wait":
                break
            end_n = buf.next_end_n
            hit = [a for a in pending if a.end_n == end_n]
            if status == "ready":
                for a in hit or [None]:
                    self._backlog.append(self._item(buf, end_n, now, a, copy))
            else:  # overwritten before it could be cut: said so, never dropped silently
                self.counts["windows_lost"] += 1
                for a in hit or [None]:
                    self._lost.append(LostWindow(pid, end_n / self.config.fs_hz, "window data no longer in the ring buffer",
                                                 a.event if a else None, buf.capture_of(end_n)))
            pending = [a for a in pending if a.end_n != end_n]
            buf.next_end_n += buf.hop_n
        keep = []
        for a in pending:
            status = buf.window_status(a.end_n)
            if status == "ready":
                self._backlog.append(self._item(buf, a.end_n, now, a, copy))
            elif status == "gone":
                self.counts["alarms_unanswerable"] += 1
                self._lost.append(LostWindow(pid, a.event.time_s, "alarm window not in the buffer (no data for it)", a.event,
                                             a.event.capture_unix_s))
            else:
                keep.append(a)
        if keep:
            self.alarms[pid] = keep
        else:
            self.alarms.pop(pid, None)

    def ready(self, now: float | None = None, copy: bool = True) -> tuple[list[WindowItem], list[LostWindow]]:
        """Windows of every patient that became ready since the last call, and windows that cannot be cut.

        ``copy=False``: windows cut now are views of the ring buffers (one copy less per window when the
        caller stacks them into a batch right away); the caller must ``materialize()`` every item it still
        holds before it adds more chunks. Windows cut earlier (before a chunk would overwrite them) are copies."""
        now = time.time() if now is None else now
        for pid in self.dirty:
            self._drain(pid, now, copy)
        self.dirty = set(p for p in self.alarms if p in self.patients and self.alarms[p])
        items, lost, self._backlog, self._lost = self._backlog, self._lost, [], []
        return items, lost

    def committable(self, consumed: dict[tuple[str, int], int], waveforms: str = "icu.waveforms",
                    alarms: str = "icu.alarms") -> dict[tuple[str, int], int]:
        """Offset to commit per (topic, partition): the next consumed offset, held back to the oldest data
        or alarm that a window not scored yet still needs. ``consumed`` = last offset read + 1."""
        out = dict(consumed)
        for pid, buf in self.patients.items():
            tp = (waveforms, self.partition_of[pid])
            extra = [a.end_n for a in self.alarms.get(pid, [])]
            need = buf.needed_offset(extra)
            if need is not None and tp in out:
                out[tp] = min(out[tp], need)
        for pid, pending in self.alarms.items():
            for a in pending:
                tp = (alarms, a.partition)
                if tp in out and a.offset >= 0:
                    out[tp] = min(out[tp], a.offset)
        return out

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Forget patients silent for ``idle_evict_s`` (their stream ended); returns their ids."""
        now = time.time() if now is None else now
        gone = [p for p, b in self.patients.items() if now - b.last_seen_unix_s > self.config.idle_evict_s]
        for p in gone:
            del self.patients[p]
            self.partition_of.pop(p, None)
            self.alarm_context.pop(p, None)
            self.counts["evicted"] += 1
        return gone

    def forget_partitions(self, partitions: set[int]) -> list[str]:
        """Drop the state of patients whose waveform partition was revoked (another consumer owns them now); returns them."""
        gone = [p for p, part in self.partition_of.items() if part in partitions]
        for p in gone:
            self.patients.pop(p, None)
            self.partition_of.pop(p, None)
            self.alarms.pop(p, None)
        return gone

