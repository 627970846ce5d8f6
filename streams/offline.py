"""Offline replay: every window of every record through the stream's own scorer, without Kafka or Ray.

The windows, masks and alarm context are the ones the stream's ``Windower`` cuts from a replay that starts at
``start_s`` (a window ends every ``hop_s`` from ``start_s + window_s``; a slot with no finite sample in the window
is absent; windows before the record's alarm carry the default alarm type, the window ending at the alarm and
later ones the record's type; the window ending at the alarm answers it). They go through the same ``Scorer``
object the consumer would use (features, cascade, member), batched across records, and the same risk-alarm
hysteresis, so a record's offline scores equal the stream's for the same windows.

Records are split over ``workers`` processes (one scorer each); results come back per record, in record order.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from models.data import ALARM_S, Record, window
from models.errors import InvalidFieldError

from .hysteresis import HysteresisConfig, RiskHysteresis
from .scorer import Scorer, WindowBatch, score_isolating
from .windows import WindowConfig

COLUMNS = ("record", "window_end_s", "alarm_type", "is_alarm", "probability", "positive", "verdict", "stage", "degraded",
           "risk_alarm", "models")


@dataclass(frozen=True)
class OfflineConfig:
    window: WindowConfig = WindowConfig()
    start_s: float = 0.0
    end_s: float | None = None
    hysteresis: HysteresisConfig = HysteresisConfig()
    batch: int = 256
    deadline_ms: float = 1000.0

    def __post_init__(self):
        if not self.start_s >= 0:
            raise InvalidFieldError("--start-s", "must be >= 0", self.start_s)
        if self.end_s is not None and not self.end_s > self.start_s + self.window.window_s:
            raise InvalidFieldError("--end-s", f"must be > --start-s + the window ({self.start_s + self.window.window_s} s)", self.end_s)
        if self.batch < 1:
            raise InvalidFieldError("batch", "must be >= 1", self.batch)
        if abs(round(self.start_s) - self.start_s) > 1e-9:
            raise InvalidFieldError("--start-s", "must be whole seconds (the replay's 1 s chunks)", self.start_s)
        k = (ALARM_S - self.start_s - self.window.window_s) / self.window.hop_s
        if k >= 0 and abs(round(k) - k) > 1e-6:
            raise InvalidFieldError("--hop-s", f"must put a window end on the alarm time ({ALARM_S:g} s = start + window + k hop)",
                                    self.window.hop_s)


def record_windows(rec: Record, cfg: OfflineConfig) -> Iterator[tuple[float, np.ndarray, np.ndarray, str, bool]]:
    """(window end s, window [5, n], mask [5], alarm type, answers the alarm) as the stream would cut them."""
    w = cfg.window
    stop = rec.n_samples / rec.fs_hz if cfg.end_s is None else min(cfg.end_s, rec.n_samples / rec.fs_hz)
    end = cfg.start_s + w.window_s
    while end <= stop + 1e-9:
        x = window(rec, end, w.window_s)
        mask = rec.mask & np.isfinite(x).any(axis=1)
        after = end >= ALARM_S - 1e-9
        yield end, x, mask, rec.alarm_type if after and rec.alarm_type else w.default_alarm_type, abs(end - ALARM_S) < 1e-9
        end = round(end + w.hop_s, 6)


def score_records(records: Sequence[Record], scorer: Scorer, cfg: OfflineConfig, progress: Callable[[int], None] | None = None) -> list[dict]:
    """Rows (``COLUMNS``) for every window of ``records``, scored in batches of ``cfg.batch`` windows."""
    rows: list[dict] = []
    pending: list[tuple] = []
    hyst = RiskHysteresis(cfg.hysteresis)

    def flush():
        if not pending:
            return
        n = len(pending)
        sample = np.zeros(n)
        batch = WindowBatch([p[0] for p in pending], np.array([p[1] for p in pending]), np.stack([p[2] for p in pending]),
                            np.stack([p[3] for p in pending]), [p[4] for p in pending], np.array([p[5] for p in pending]),
                            sample, sample + cfg.deadline_ms / 1e3)
        for p, s in zip(pending, score_isolating(scorer, batch)):
            rows.append({
                "record": p[0], "window_end_s": p[1], "alarm_type": p[4], "is_alarm": p[5], "probability": s.probability,
                "positive": s.positive, "verdict": (None if not p[5] or s.positive is None else bool(s.positive)), "stage": s.stage,
                "degraded": s.degraded_reason is not None, "risk_alarm": hyst.update(p[0], p[1], s.probability),
                "models": "+".join(s.models),
            })
        pending.clear()

    for rec in records:
        for end, x, mask, at, is_alarm in record_windows(rec, cfg):
            pending.append((rec.name, end, x.astype(np.float32), mask, at, is_alarm))
            if len(pending) >= cfg.batch:
                flush()  # batches span records; rows stay in record and time order, which the hysteresis needs
        if progress is not None:
            progress(1)
    flush()
    return rows


_WORKER: dict = {}


def _init(make_scorer: Callable[[], Scorer], cfg: OfflineConfig) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["scorer"], _WORKER["cfg"] = make_scorer(), cfg


def _work(records: Sequence[Record]) -> list[dict]:
    return score_records(records, _WORKER["scorer"], _WORKER["cfg"])


def replay_offline(records: Sequence[Record], make_scorer: Callable[[], Scorer], cfg: OfflineConfig, workers: int = 1,
                   progress: bool = True) -> tuple[list[dict], dict]:
    """Score every window of ``records``; returns (rows in record order, {"windows", "signal_s", "wall_s", "x_real_time"})."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    bar = tqdm(total=len(records), desc="offline replay", unit="rec", disable=not progress)
    if workers <= 1:
        rows = score_records(records, make_scorer(), cfg, bar.update)
    else:
        chunks = [list(records[i : i + 4]) for i in range(0, len(records), 4)]
        rows = []
        with mp.get_context("fork").Pool(workers, initializer=_init, initargs=(make_scorer, cfg)) as pool:
            for part, chunk in zip(pool.imap(_work, chunks), chunks):
                rows += part
                bar.update(len(chunk))
    bar.close()
    wall = time.perf_counter() - t0
    signal_s = sum((min(cfg.end_s or 1e18, r.n_samples / r.fs_hz) - cfg.start_s) for r in records)
    return rows, {"records": len(records), "windows": len(rows), "signal_s": round(signal_s, 1), "wall_s": round(wall, 2),
                  "x_real_time": round(signal_s / wall, 1) if wall > 0 else None, "workers": workers}


def write_rows(path, rows: list[dict]) -> None:
    """CSV (or Parquet when the name ends in .parquet and pandas can write it) with ``COLUMNS``."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if str(path).endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False, float_format="%.9g")
