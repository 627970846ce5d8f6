"""A per-patient ring buffer of canonical slots that places chunks by sequence number and cuts windows.

Chunk ``seq`` holds stream samples ``[seq * chunk_n, (seq + 1) * chunk_n)``. The ring keeps
``capacity_chunks`` chunks and writes every sample twice (at ``i`` and ``i + capacity``), so any window
up to the capacity is one contiguous slice: no per-sample Python, no wrap-around copies.

- a chunk that skips ahead NaN-fills the chunks it skipped and records them as missing;
- a late (out-of-order) chunk fills its place if it is still inside the ring, and clears the gap;
- a chunk already held is a duplicate and is dropped;
- a window is cut when every chunk it covers has arrived, or when the stream is ``lateness_n`` samples
  past its end (then the missing chunks stay NaN and the window is flagged ``gap_chunks > 0``).

Window ends lie on a fixed grid (multiples of ``hop_n`` stream samples), so a consumer that restarts and
re-reads a stream from an earlier offset cuts exactly the same windows.
"""

from __future__ import annotations

import numpy as np

from models.data import N_SLOTS, assign_slots

ACCEPTED, DUPLICATE, TOO_LATE = "accepted", "duplicate", "too_late"


class PatientBuffer:
    def __init__(self, patient_id: str, channel_names: tuple[str, ...], chunk_n: int, window_n: int, hop_n: int,
                 lateness_n: int, capacity_chunks: int):
        self.patient_id = patient_id
        self.channel_names = tuple(channel_names)
        slots, self.ignored_channels = assign_slots(channel_names)
        self.src = np.array([j for j, s in enumerate(slots) if s is not None], dtype=np.intp)
        self.dst = np.array([s for s in slots if s is not None], dtype=np.intp)
        self.mask = np.zeros(N_SLOTS, dtype=bool)
        self.mask[self.dst] = True
        # channels in slot order without holes (the usual case): placed with one slice instead of fancy indexing
        k = len(self.dst)
        self._rows = (slice(int(self.dst[0]), int(self.dst[0]) + k) if k and np.array_equal(self.dst, np.arange(self.dst[0], self.dst[0] + k))
                      and np.array_equal(self.src, np.arange(k)) and k == len(self.channel_names) else None)
        self.chunk_n, self.window_n, self.hop_n, self.lateness_n = chunk_n, window_n, hop_n, lateness_n
        self.cap = capacity_chunks
        self.cap_n = capacity_chunks * chunk_n
        if window_n + lateness_n + chunk_n > self.cap_n:
            raise ValueError(f"ring of {self.cap_n} samples cannot hold a {window_n}-sample window with {lateness_n} lateness")
        self.buf = np.full((N_SLOTS, 2 * self.cap_n), np.nan, dtype=np.float32)
        self.seqs = np.full(capacity_chunks, -1, dtype=np.int64)  # seq held in each ring slot, -1 = none
        self.offsets = np.full(capacity_chunks, -1, dtype=np.int64)  # Kafka offset of that chunk
        self.captures = np.zeros(capacity_chunks, dtype=np.float64)  # capture_unix_s of that chunk
        self.finite = np.zeros((capacity_chunks, N_SLOTS), dtype=bool)  # slot has a finite sample in that chunk
        self.max_seq = -1
        self.first_seq = -1
        self.missing: set[int] = set()
        self.next_end_n = -1
        self.last_seen_unix_s = 0.0

    # ------------------------------------------------------------------ placement
    def add(self, seq: int, samples: np.ndarray, offset: int, capture_unix_s: float) -> str:
        """Place one chunk (float32 [n_channels, chunk_n] in the stream's channel order)."""
        cn, cap = self.chunk_n, self.cap
        if self.first_seq < 0:
            self.first_seq = seq
            self.max_seq = seq - 1
            first_end = seq * cn + self.window_n
            self.next_end_n = -(-first_end // self.hop_n) * self.hop_n
        if seq <= self.max_seq:
            if self.seqs[seq % cap] == seq:
                return DUPLICATE
            if seq not in self.missing:  # before the stream start or already overwritten
                return TOO_LATE
            if (seq + 1) * cn <= self.next_end_n - self.window_n:  # every window that needs it is already cut
                self.missing.discard(seq)
                return TOO_LATE
            self.missing.discard(seq)
        elif seq > self.max_seq + 1:
            skipped = range(max(self.max_seq + 1, seq - cap + 1), seq)
            for k in skipped:
                self._write(k, None, -1, 0.0)
            self.missing.update(range(self.max_seq + 1, seq))
            self.max_seq = seq
        else:
            self.max_seq = seq
        self._write(seq, samples, offset, capture_unix_s)
        if self.missing and min(self.missing) < self.max_seq - cap:
            self.missing = {k for k in self.missing if k > self.max_seq - cap}
        return ACCEPTED

    def _write(self, seq: int, samples: np.ndarray | None, offset: int, capture_unix_s: float) -> None:
        cn, slot = self.chunk_n, seq % self.cap
        p = slot * cn
        q = p + self.cap_n
        if samples is None:
            self.buf[:, p : p + cn] = np.nan
            self.buf[:, q : q + cn] = np.nan
            self.seqs[slot] = -1
            self.finite[slot] = False
        else:
            block = self.buf[:, p : p + cn]
            if self._rows is not None:
                block[self._rows] = samples
            else:
                block[self.dst] = samples[self.src]  # slots without a channel stay NaN
            self.buf[:, q : q + cn] = block
            self.finite[slot] = np.isfinite(block).any(axis=1)
            self.seqs[slot] = seq
        self.offsets[slot] = offset
        self.captures[slot] = capture_unix_s

    # ------------------------------------------------------------------ windows
    @property
    def stream_end_n(self) -> int:
        """Stream samples received so far (end of the highest chunk)."""
        return (self.max_seq + 1) * self.chunk_n

    def gap_chunks(self, end_n: int) -> int:
        """Chunks missing inside the window ending at ``end_n``."""
        if not self.missing:
            return 0
        a, b = (end_n - self.window_n) // self.chunk_n, (end_n - 1) // self.chunk_n
        return sum(1 for k in self.missing if a <= k <= b)

    def window_status(self, end_n: int) -> str:
        """'ready', 'wait' (data not complete yet) or 'gone' (no longer / never in the ring)."""
        start_n = end_n - self.window_n
        if start_n < self.first_seq * self.chunk_n or start_n < self.stream_end_n - self.cap_n:
            return "gone"
        if end_n > self.stream_end_n:
            return "wait"
        if self.gap_chunks(end_n) and self.stream_end_n < end_n + self.lateness_n:
            return "wait"
        return "ready"

    def chunk_rows(self, arr: np.ndarray, end_n: int) -> np.ndarray:
        """Rows of a per-chunk ring array (``offsets``, ``finite``...) for the chunks the window ending at
        ``end_n`` touches, oldest first."""
        a, b = (end_n - self.window_n) // self.chunk_n, (end_n - 1) // self.chunk_n
        ia, ib = a % self.cap, b % self.cap
        if ia <= ib and b - a < self.cap:
            return arr[ia : ib + 1]
        return arr[np.arange(a, b + 1) % self.cap]

    def window_finite(self, end_n: int, win: np.ndarray | None = None) -> np.ndarray:
        """bool [N_SLOTS]: slot has at least one finite sample in the window ending at ``end_n``. From the
        per-chunk flags when the window is made of whole chunks, else from the samples (``win`` = its cut)."""
        if end_n % self.chunk_n == 0 and self.window_n % self.chunk_n == 0:
            return self.chunk_rows(self.finite, end_n).any(axis=0)
        return np.isfinite(self.cut(end_n) if win is None else win).any(axis=1)

    def cut(self, end_n: int) -> np.ndarray:
        """View [5, window_n] of the window ending at stream sample ``end_n`` (copy it before adding more)."""
        p = (end_n - self.window_n) % self.cap_n
        return self.buf[:, p : p + self.window_n]

    def capture_of(self, end_n: int) -> float:
        """Wall clock at which the chunk holding the window's last sample was complete."""
        return float(self.captures[((end_n - 1) // self.chunk_n) % self.cap])

    def needed_offset(self, extra_end_ns=()) -> int | None:
        """Smallest Kafka offset still needed to cut the next windows (None: nothing held is needed)."""
        ends = [self.next_end_n, *extra_end_ns]
        need_seq = (min(ends) - self.window_n) // self.chunk_n
        held = (self.seqs >= need_seq) & (self.offsets >= 0)
        return int(self.offsets[held].min()) if held.any() else None
