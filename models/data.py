"""CinC-2015-style record folders: listing, loading into canonical channel slots, cutting windows.

A folder holds ``RECORDS`` (one record name a line), optionally ``ALARMS``
(``record,alarm_type,1=true/0=false``), and WFDB files either beside them or in
``records/``. Every record is mapped onto five fixed slots with a presence mask:

    ECG1, ECG2   two ECG leads (mV), in the order the record lists them
    ABP          arterial blood pressure (mmHg)
    PPG          photoplethysmogram (PLETH, arbitrary units)
    RESP         respiration (arbitrary units)

Windows are raw slices (NaN kept): ``alarm_window`` and ``sliding_windows``
return exactly ``p_signal[start:stop]`` of the WFDB record, so a stream consumer
can be checked against them bit for bit. Cleaning for models happens in
``models.preprocess``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import InvalidFieldError, RecordError

SLOTS: tuple[str, ...] = ("ECG1", "ECG2", "ABP", "PPG", "RESP")
N_SLOTS = len(SLOTS)
ECG_NAMES = frozenset(
    {"I", "II", "III", "V", "AVR", "AVL", "AVF", "MCL", "MCL1", "V1", "V2", "V3", "V4", "V5", "V6", "ECG"}
)
NON_ECG_SLOTS = {"ABP": "ABP", "ART": "ABP", "PLETH": "PPG", "PPG": "PPG", "SPO2": "PPG", "RESP": "RESP"}
ALARM_TYPES: tuple[str, ...] = (
    "Asystole",
    "Bradycardia",
    "Tachycardia",
    "Ventricular_Tachycardia",
    "Ventricular_Flutter_Fib",
)
FS_HZ = 250
ALARM_S = 300.0
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cinc2015"
CACHE_DATA = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "holmes-icu" / "cinc2015"


def slot_of(sig_name: str) -> str | None:
    """Canonical slot kind for a WFDB signal name: 'ECG', 'ABP', 'PPG', 'RESP', or None if unknown."""
    key = sig_name.strip().upper()
    if key in ECG_NAMES:
        return "ECG"
    return NON_ECG_SLOTS.get(key)


def assign_slots(sig_names: Sequence[str]) -> tuple[list[int | None], list[str]]:
    """Map each signal to a slot index (or None); returns (slot per signal, ignored names).

    >>> assign_slots(["II", "V", "PLETH", "ABP"])[0]
    [0, 1, 3, 2]
    """
    out: list[int | None] = []
    ignored: list[str] = []
    used: set[int] = set()
    for name in sig_names:
        kind = slot_of(name)
        idx = None
        if kind == "ECG":
            idx = 0 if 0 not in used else (1 if 1 not in used else None)
        elif kind is not None:
            idx = SLOTS.index(kind)
            idx = idx if idx not in used else None
        if idx is None:
            ignored.append(name)
        else:
            used.add(idx)
        out.append(idx)
    return out, ignored


def alarm_index(alarm_type: str) -> int:
    if alarm_type not in ALARM_TYPES:
        raise InvalidFieldError("alarm_type", "must be a CinC 2015 alarm type", alarm_type, ALARM_TYPES)
    return ALARM_TYPES.index(alarm_type)


@dataclass(frozen=True)
class RecordInfo:
    name: str
    alarm_type: str
    label: int | None  # 1 = true alarm, 0 = false alarm, None = unlabelled


@dataclass
class Record:
    """One patient record in canonical slots. ``signals`` is float32 [5, n] (NaN where absent)."""

    name: str
    alarm_type: str
    label: int | None
    fs_hz: int
    signals: np.ndarray
    mask: np.ndarray  # bool [5]: slot present in the record
    sig_names: list[str] = field(default_factory=list)
    slot_names: list[str | None] = field(default_factory=list)  # original name in each slot
    ignored_channels: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return self.signals.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    @property
    def info(self) -> RecordInfo:
        return RecordInfo(self.name, self.alarm_type, self.label)


def resolve_data_dir(data: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data`` if given, then $HOLMES_DATA, then the local cache, then ../shared/data/cinc2015."""
    candidates: list[tuple[str, Path]] = []
    if data is not None:
        p = Path(data).expanduser()
        if not (p / "RECORDS").is_file():
            raise InvalidFieldError("--data", "must be a folder containing a RECORDS file", str(p))
        return p
    env = os.environ.get("HOLMES_DATA")
    if env:
        p = Path(env).expanduser()
        if not (p / "RECORDS").is_file():
            raise InvalidFieldError("HOLMES_DATA", "must be a folder containing a RECORDS file", str(p))
        return p
    candidates = [("cache", CACHE_DATA), ("shared", SHARED_DATA), ("cwd-shared", Path.cwd().parent / "shared" / "data" / "cinc2015")]
    for _, p in candidates:
        if (p / "RECORDS").is_file():
            return p
    raise InvalidFieldError(
        "data folder", "was not found: pass --data DIR or set HOLMES_DATA", [str(p) for _, p in candidates]
    )


def _record_base(data_dir: Path, name: str) -> Path:
    for base in (data_dir / "records" / name, data_dir / name):
        if base.with_suffix(".hea").is_file():
            return base
    raise RecordError(name, "header file", "must exist as records/NAME.hea or NAME.hea", str(data_dir / "records" / f"{name}.hea"))


def _label_from_comments(comments: Sequence[str]) -> tuple[str | None, int | None]:
    alarm_type = label = None
    for c in comments:
        c = c.strip()
        if c in ALARM_TYPES:
            alarm_type = c
        elif c.lower() == "true alarm":
            label = 1
        elif c.lower() == "false alarm":
            label = 0
        elif alarm_type is None and c and " " not in c:
            alarm_type = c  # validated by the caller
    return alarm_type, label


def list_records(data_dir: str | os.PathLike) -> list[RecordInfo]:
    """Records named in RECORDS, with alarm type and label from ALARMS (or the headers when ALARMS is absent).

    Unknown alarm types are kept here and rejected by ``load_record``, so one bad line never hides the others.
    """
    data_dir = Path(data_dir)
    names = [n.strip() for n in (data_dir / "RECORDS").read_text().split() if n.strip()]
    alarms: dict[str, tuple[str, int | None]] = {}
    alarms_file = data_dir / "ALARMS"
    if alarms_file.is_file():
        with alarms_file.open() as f:
            for row in csv.reader(f):
                if len(row) >= 2 and row[0].strip():
                    lab = row[2].strip() if len(row) > 2 else ""
                    alarms[row[0].strip()] = (row[1].strip(), int(lab) if lab in ("0", "1") else None)
    out = []
    for n in names:
        if n in alarms:
            out.append(RecordInfo(n, *alarms[n]))
            continue
        try:
            import wfdb

            h = wfdb.rdheader(str(_record_base(data_dir, n)))
            at, lab = _label_from_comments(h.comments or [])
        except Exception:  # reported when the record is loaded
            at, lab = None, None
        out.append(RecordInfo(n, at or "", lab))
    return out


def load_record(data_dir: str | os.PathLike, name: str, info: RecordInfo | None = None) -> Record:
    """Read one WFDB record into canonical slots. Raises ``RecordError`` naming what is wrong."""
    import wfdb

    data_dir = Path(data_dir)
    base = _record_base(data_dir, name)
    try:
        rec = wfdb.rdrecord(str(base))
    except Exception as e:  # wfdb raises a zoo of types for truncated/corrupt files
        raise RecordError(name, "signal file", f"must be a readable WFDB record ({type(e).__name__}: {e})", str(base)) from e
    if info is None:
        at, lab = _label_from_comments(rec.comments or [])
        info = RecordInfo(name, at or "", lab)
    if info.alarm_type not in ALARM_TYPES:
        raise RecordError(name, "alarm_type", f"must be one of {', '.join(ALARM_TYPES)}", info.alarm_type)
    if rec.fs is None or float(rec.fs) != FS_HZ:
        raise RecordError(name, "fs_hz", f"must be {FS_HZ}", rec.fs)
    sig = rec.p_signal
    if sig is None or sig.ndim != 2 or sig.shape[0] < int(ALARM_S * FS_HZ):
        n = 0 if sig is None else sig.shape[0]
        raise RecordError(name, "n_samples", f"must cover the alarm at {ALARM_S:.0f} s ({int(ALARM_S * FS_HZ)} samples)", n)
    slots, ignored = assign_slots(rec.sig_name)
    signals = np.full((N_SLOTS, sig.shape[0]), np.nan, dtype=np.float32)
    mask = np.zeros(N_SLOTS, dtype=bool)
    slot_names: list[str | None] = [None] * N_SLOTS
    for j, idx in enumerate(slots):
        if idx is None:
            continue
        col = sig[:, j].astype(np.float32)
        signals[idx] = col
        slot_names[idx] = rec.sig_name[j]
        mask[idx] = bool(np.isfinite(col).any())  # an all-NaN channel counts as absent
    return Record(name, info.alarm_type, info.label, FS_HZ, signals, mask, list(rec.sig_name), slot_names, ignored)


def load_dataset(data_dir: str | os.PathLike, names: Sequence[str] | None = None, progress: bool = False):
    """Load every record; a bad record is skipped with its reason, never aborting the others.

    Returns ``(records, skipped)`` where ``skipped`` is a list of ``(name, reason)``.
    """
    data_dir = Path(data_dir)
    infos = list_records(data_dir)
    if names is not None:
        wanted = set(names)
        infos = [i for i in infos if i.name in wanted]
    it = infos
    if progress:
        from tqdm import tqdm

        it = tqdm(infos, desc="records", unit="rec")
    records, skipped = [], []
    for info in it:
        try:
            records.append(load_record(data_dir, info.name, info))
        except RecordError as e:
            skipped.append((info.name, str(e)))
    return records, skipped


def window_bounds(end_s: float, window_s: float, fs_hz: int = FS_HZ) -> tuple[int, int]:
    """Sample indices [start, stop) of the window of ``window_s`` seconds ending at ``end_s``."""
    if window_s <= 0:
        raise InvalidFieldError("window_s", "must be > 0", window_s)
    stop = int(round(end_s * fs_hz))
    return stop - int(round(window_s * fs_hz)), stop


def window(record: Record, end_s: float, window_s: float = 16.0) -> np.ndarray:
    """Raw slice [5, window_s*fs] ending at ``end_s``: bit-identical to the WFDB signal's samples."""
    start, stop = window_bounds(end_s, window_s, record.fs_hz)
    if start < 0 or stop > record.n_samples:
        raise InvalidFieldError("end_s", f"must leave a full {window_s} s window inside the record ({record.duration_s} s)", end_s)
    return record.signals[:, start:stop]


def alarm_window(record: Record, window_s: float = 16.0, offset_s: float = 0.0) -> np.ndarray:
    """The window ending at the alarm (t = 300 s) minus ``offset_s`` (window-shift augmentation)."""
    return window(record, ALARM_S - offset_s, window_s)


def sliding_windows(record: Record, window_s: float = 16.0, hop_s: float = 1.0) -> Iterator[tuple[float, np.ndarray]]:
    """(end_s, window) for every window of the record, ends at window_s, window_s + hop_s, ..."""
    if hop_s <= 0:
        raise InvalidFieldError("hop_s", "must be > 0", hop_s)
    end_s = window_s
    while end_s * record.fs_hz <= record.n_samples + 1e-9:
        yield end_s, window(record, end_s, window_s)
        end_s = round(end_s + hop_s, 6)


def cv_folds(infos: Sequence[RecordInfo], n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold id (0..n_splits-1) per record: one record is one group, stratified by alarm type and label.

    Every model family uses these folds, so out-of-fold predictions of different models can be ensembled.
    """
    from sklearn.model_selection import StratifiedKFold

    strata = np.array([f"{i.alarm_type}:{i.label}" for i in infos])
    # strata smaller than n_splits are merged by label so StratifiedKFold stays valid
    uniq, counts = np.unique(strata, return_counts=True)
    small = set(uniq[counts < n_splits])
    strata = np.array([f"rare:{i.label}" if s in small else s for s, i in zip(strata, infos)])
    uniq, counts = np.unique(strata, return_counts=True)
    small = set(uniq[counts < n_splits])
    strata = np.array(["rare" if s in small else s for s in strata])
    folds = np.empty(len(infos), dtype=np.int64)
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(infos)), strata)):
        folds[test] = k
    return folds
