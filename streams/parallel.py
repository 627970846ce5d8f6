"""Score one tick's windows on several cores: the batch is cut into contiguous parts, the calling process
scores the first part and ``workers - 1`` worker processes score the others, each with its own copy of
the member, one thread each.

The consumer process stays one Kafka group member (one poll loop, one commit path); only the CPU-bound
``predict_proba`` is spread. Worker processes are started with ``spawn`` (the consumer runs Kafka client
threads, which ``fork`` would copy mid-flight) and load the member once. A worker that dies is reported in
the log and its part is scored in the calling process; the pool is then rebuilt, so a crash costs one
slower tick, never a lost window.

    predict = ParallelPredict(member, workers=2).start()
    probs = predict(windows, masks, alarm_types)     # == member.predict_proba(...), in order

As with any ``spawn`` pool, a script that builds one must keep its top level behind
``if __name__ == "__main__":`` (the ``holmes`` command does).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from models.errors import InvalidFieldError

log = logging.getLogger(__name__)
_MEMBER = None  # the member inside a worker process


def _init_worker(member_bytes: bytes) -> None:
    global _MEMBER
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    _MEMBER = pickle.loads(member_bytes)
    if getattr(_MEMBER, "kind", None) == "features":
        from models.features import warm_up

        warm_up()


def _ready() -> bool:
    return _MEMBER is not None


def _predict_part(windows: np.ndarray, masks: np.ndarray, alarm_types: list[str]) -> np.ndarray:
    return np.asarray(_MEMBER.predict_proba(windows, masks, alarm_types), dtype=np.float64)


class ParallelPredict:
    """``member.predict_proba`` over ``workers`` processes (this one included) for batches of at least
    ``min_batch`` windows; smaller batches are scored here, where a process hop would cost more than it saves."""

    def __init__(self, member, workers: int = 2, min_batch: int = 16):
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
            raise InvalidFieldError("workers", "must be an integer in [1, 64]", workers)
        if not isinstance(min_batch, int) or min_batch < 2:
            raise InvalidFieldError("min_batch", "must be an integer >= 2", min_batch)
        self.member = member
        self.workers = workers
        self.min_batch = min_batch
        self._member_bytes = pickle.dumps(member)
        self._pool: ProcessPoolExecutor | None = None
        self.crashes = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers - 1, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self._member_bytes,))
        return self._pool

    def start(self) -> "ParallelPredict":
        """Start the workers and load the member in each now, not on the first real tick (spawn takes seconds)."""
        if self.workers > 1:
            for f in [self._executor().submit(_ready) for _ in range(self.workers - 1)]:
                f.result()
        return self

    def __call__(self, windows: np.ndarray, masks: np.ndarray, alarm_types) -> np.ndarray:
        n = len(windows)
        alarm_types = list(alarm_types)
        if self.workers == 1 or n < self.min_batch:
            return np.asarray(self.member.predict_proba(windows, masks, alarm_types), dtype=np.float64)
        cuts = np.linspace(0, n, self.workers + 1).round().astype(int)
        parts = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

        def here(a: int, b: int) -> np.ndarray:
            return np.asarray(self.member.predict_proba(windows[a:b], masks[a:b], alarm_types[a:b]), dtype=np.float64)

        broken: BaseException | None = None
        try:
            futures = [self._executor().submit(_predict_part, windows[a:b], masks[a:b], alarm_types[a:b]) for a, b in parts[1:]]
        except BrokenProcessPool as e:
            broken, futures = e, []
        out = [here(*parts[0])]
        for i, (a, b) in enumerate(parts[1:]):
            try:
                if i >= len(futures):
                    raise broken or BrokenProcessPool("no worker")
                out.append(futures[i].result())
            except BrokenProcessPool as e:
                broken = e
                out.append(here(a, b))
        if broken is not None:
            self._crashed(broken)
        return np.concatenate(out)

    def _crashed(self, error: BaseException) -> None:
        self.crashes += 1
        log.error("scoring worker process died (%s); scoring its part here and restarting the pool", error)
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __getstate__(self):
        raise TypeError("ParallelPredict holds worker processes and cannot be pickled; pickle its member")
