"""The stream consumer: waveforms and alarms in, one scored batch per tick, risk scores out, safe commits.

Loop: poll both topics -> validate every message (a bad one goes to ``icu.deadletter`` with its reason and
original bytes; nothing else is affected) -> place chunks in per-patient ring buffers -> cut every window
that became ready, of all patients -> score in two lanes -> publish one ``RiskScore`` per window to
``icu.risk`` (``streams.publish``) -> wait for the broker's acknowledgement -> commit offsets, held back to the
oldest data a window not yet scored still needs (``streams.offsets``). A consumer killed at any point therefore
re-reads and re-scores; de-duplicating ``icu.risk`` by (patient, window end) leaves exactly one score per window.

Two lanes: the windows that answer a monitor alarm are scored first, in a call of their own to ``verdicts``
(the ensemble service's verdict lane in production; the routine scorer when none is given), due
``verdict_deadline_ms`` after the alarm's sample time; the routine windows of all patients then go to the
routine scorer (the cascade) as ONE batch per ``max_batch``. A verdict published after its deadline carries
``verdict_late`` in its degraded reasons and is counted (``verdicts_late``).

>>> c = StreamConsumer(KafkaSettings("127.0.0.1:9092"), make_scorer("member", member=m))   # doctest: +SKIP
>>> c.run(timeout_s=60)                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from models.errors import InvalidFieldError

from .broker import KafkaSettings, Topics
from .hysteresis import HysteresisConfig, RiskHysteresis
from .metrics import StreamMetrics
from .offsets import OffsetBook, rebalance_listener
from .publish import MAX_DEADLETTER_COPY_BYTES, RiskPublisher
from .schemas import decode_alarm, decode_chunk
from .scorer import ScoreOut, Scorer, WindowBatch, score_isolating
from .windows import WindowConfig, Windower, WindowItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerConfig:
    """Kafka-side settings of the consumer (Tansu needs short session/poll intervals to assign promptly)."""

    group_id: str = "holmes-scorer"
    poll_timeout_ms: int = 50
    max_poll_records: int = 5000
    commit_interval_s: float = 1.0
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    max_poll_interval_ms: int = 5000
    fetch_max_wait_ms: int = 50
    # 1: the broker answers a fetch as soon as any data is there (lowest latency). Larger (e.g. 64 KiB = 4
    # chunks) means fewer, larger fetches and ticks: less client CPU per window at high bed counts, but at
    # low ones every fetch waits up to ``fetch_max_wait_ms`` for the bytes.
    fetch_min_bytes: int = 1
    auto_offset_reset: str = "earliest"
    deadline_ms: float = 1000.0  # routine windows: due this long after their last sample
    verdict_deadline_ms: float = 1000.0  # a verdict: due this long after its alarm's sample time
    max_batch: int = 128
    # Backpressure: about this many windows cut and not scored at most (each a 16 s copy, ~80 KB); a poll takes no more
    # records than there is room for, and none while it is full (the broker keeps the rest, alarms included). Without it a consumer that
    # falls behind fetches on and holds its whole backlog as windows: 5-6 GB per consumer at 3,000 beds on 2 cores.
    # (Pausing the waveform partitions instead left a partition's last 4 records undelivered after resuming, in 1 of 6
    # trials with kafka-python 3.0.12 and the embedded broker: not used.)
    max_pending: int = 8192
    tick_budget_s: float = 1.0  # scoring time per loop step before polling again (keeps the group membership)
    # Routine windows wait until the oldest has been ready this long (or a full ``max_batch`` is ready), so a ward's
    # windows are scored in fewer, larger batches: fewer service calls for the escalations, each costing ~10 ms of CPU
    # per replica whatever its size. Adds up to this much latency to routine windows; verdicts never wait. 0: off.
    routine_hold_s: float = 0.0
    # Risk scores: every tick ends with a flush, so a longer linger costs no latency there; it lets one tick's
    # scores share one batch per partition (one sender wake-up and one produce request instead of one per few
    # sends). A tick scored in several parts still sends each part within ``linger_ms`` of its scoring.
    linger_ms: int = 10
    producer_batch_bytes: int = 256 * 1024
    hysteresis: HysteresisConfig = field(default_factory=HysteresisConfig)  # the risk alarm of every RiskScore

    def __post_init__(self):
        if self.auto_offset_reset not in ("earliest", "latest"):
            raise InvalidFieldError("auto_offset_reset", "must be earliest or latest", self.auto_offset_reset, ["earliest", "latest"])
        for name in ("poll_timeout_ms", "max_poll_records", "commit_interval_s", "deadline_ms", "verdict_deadline_ms", "max_batch",
                     "producer_batch_bytes", "fetch_min_bytes", "max_pending"):
            if not getattr(self, name) > 0:
                raise InvalidFieldError(name, "must be > 0", getattr(self, name))
        if not 0 <= self.routine_hold_s < self.deadline_ms / 1e3:
            raise InvalidFieldError("routine_hold_s", f"must be >= 0 and below the routine deadline ({self.deadline_ms / 1e3:g} s)",
                                    self.routine_hold_s)
        if self.linger_ms < 0:
            raise InvalidFieldError("linger_ms", "must be >= 0", self.linger_ms)


class StreamConsumer:
    def __init__(self, settings: KafkaSettings, scorer: Scorer, window: WindowConfig | None = None,
                 config: ConsumerConfig | None = None, metrics: StreamMetrics | None = None, topics: Topics | None = None,
                 verdicts: Scorer | None = None):
        self.settings = settings
        self.topics = topics or Topics()
        self.scorer = scorer
        self.verdicts = verdicts  # the verdict lane's scorer (None: the routine scorer answers alarms too)
        self.config = config or ConsumerConfig()
        self.risk_alarms = RiskHysteresis(self.config.hysteresis)
        self.windower = Windower(window or WindowConfig())
        self.metrics = metrics or StreamMetrics(slo_ms=self.config.deadline_ms)
        self._consumer = None
        self._producer = None
        self.publisher: RiskPublisher | None = None
        self.offsets = OffsetBook()
        self._stop = False
        self.last_scored_monotonic = time.monotonic()
        self._revoked: list[tuple[str, int]] = []  # appended by the rebalance listener (IO thread)
        self._rebalancing = False  # revoked, not yet assigned again (the listener sets and clears it)
        self._revoked_lock = threading.Lock()
        self._pending: list[WindowItem] = []  # cut, not scored yet (their data offsets hold commits back)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "StreamConsumer":
        from kafka import KafkaConsumer, KafkaProducer

        kw = self.settings.client_kwargs()
        c = self.config
        self._producer = KafkaProducer(**kw, linger_ms=c.linger_ms, batch_size=c.producer_batch_bytes,
                                       max_request_size=2 * MAX_DEADLETTER_COPY_BYTES)
        self.publisher = RiskPublisher(self._producer, self.topics, self.windower.config.window_s,
                                       self.windower.config.default_alarm_type, self.metrics, self.risk_alarms)
        from kafka.coordinator.assignors.range import RangePartitionAssignor

        from .assignor import CoPartitionedSticky

        self._consumer = KafkaConsumer(
            **kw, group_id=c.group_id, enable_auto_commit=False, auto_offset_reset=c.auto_offset_reset,
            # partitions dealt by number on both topics, each consumer keeping its own across rebalances; range (also
            # co-partitioned) where a member of the group does not know the first (an older version)
            partition_assignment_strategy=[CoPartitionedSticky(), RangePartitionAssignor],
            session_timeout_ms=c.session_timeout_ms, heartbeat_interval_ms=c.heartbeat_interval_ms,
            max_poll_interval_ms=c.max_poll_interval_ms, max_poll_records=c.max_poll_records,
            fetch_max_wait_ms=c.fetch_max_wait_ms, fetch_min_bytes=c.fetch_min_bytes,
        )
        self._consumer.subscribe([self.topics.waveforms, self.topics.alarms], listener=rebalance_listener(self))
        return self

    def request_stop(self, *_args) -> None:
        """Ask the loop to stop after the current tick (safe from a signal handler)."""
        self._stop = True

    def close(self) -> None:
        """Score what is ready, publish, commit what was published, close the clients."""
        if self._consumer is None:
            return
        try:
            self._tick(budget_s=float("inf"))
            self._producer.flush()
            self.commit(force=True)
        finally:
            self._consumer.close(autocommit=False)
            self._producer.close()
            self._consumer = self._producer = None

    def run(self, timeout_s: float | None = None, until=None) -> dict:
        """Loop until ``request_stop()``, ``until(self)`` is true or ``timeout_s`` passed; returns the metrics."""
        if self._consumer is None:
            self.start()
        t_end = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while not self._stop:
                self.step()
                if until is not None and until(self):
                    break
                if t_end is not None and time.monotonic() > t_end:
                    break
        finally:
            self.close()
        return self.snapshot()

    def snapshot(self) -> dict:
        """Metrics plus the windower's counts (duplicates, late chunks, gap windows, alarms, evictions)."""
        snap = self.metrics.snapshot()
        snap["windows"] = dict(self.windower.counts, patients=len(self.windower.patients))
        stats = getattr(self.verdicts, "stats", None)  # e.g. VerdictBlend: windows scored aside, failures
        if stats is not None:
            snap["verdict_scorer"] = stats()
        return snap

    # ------------------------------------------------------------------ one iteration
    def step(self) -> int:
        """Poll once, place what came, score and publish what is ready, commit if due; returns windows scored."""
        self._poll(self.config.poll_timeout_ms)
        n = self._tick()
        if self.offsets.due(self.config.commit_interval_s):
            with self.metrics.stages("flush"):
                self._producer.flush()
            with self.metrics.stages("commit"):
                self.commit()
            for pid in self.windower.evict_idle():
                self.risk_alarms.forget(pid)
                log.info("patient %s idle for %.0f s: state released", pid, self.windower.config.idle_evict_s)
        return n

    def _poll(self, timeout_ms: int) -> None:
        stages = self.metrics.stages
        # backpressure (ConsumerConfig.max_pending): a chunk cuts about one window, so take no more records than the
        # backlog has room for, and none while it is full (alarms wait too: their windows are behind anyway)
        room = self.config.max_pending - len(self._pending)
        self.metrics.max_pending = max(self.metrics.max_pending, len(self._pending))
        if room <= 0:
            self.metrics.inc("polls_skipped_backlog_full")
            return
        with stages("poll"):
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=min(self.config.max_poll_records, room))
        if self._revoked:
            self._forget_revoked()
        # alarms first: an alarm polled together with the chunks after it is then pending when its window is cut
        with stages("decode_place"):
            for tp, msgs in sorted(polled.items(), key=lambda kv: kv[0].topic != self.topics.alarms):
                for m in msgs:
                    self._handle(tp.topic, tp.partition, m)

    def _handle(self, topic: str, partition: int, m) -> None:
        self.offsets.mark(topic, partition, m.offset)
        self.metrics.inc("messages")
        if self.metrics.first_message_unix_s is None:
            self.metrics.mark_first_message()
        try:
            if topic == self.topics.waveforms:
                chunk = decode_chunk(m.value, m.key, self.windower.config.fs_hz)
                status = self.windower.add_chunk(chunk, partition, m.offset)
                if status == "too_late":
                    raise InvalidFieldError("seq", "must arrive while its windows are still open (late chunk)", chunk.seq)
            elif topic == self.topics.alarms:
                self.windower.add_alarm(decode_alarm(m.value, m.key), partition, m.offset)
        except (InvalidFieldError, ValueError, struct.error) as e:
            field = getattr(e, "field", "message")
            self.dead_letter(topic, partition, m, field, str(e))

    def dead_letter(self, topic: str, partition: int, m, field: str, reason: str) -> None:
        self.publisher.dead_letter(topic, partition, m, field, reason)

    def _tick(self, budget_s: float | None = None) -> int:
        """Verdicts first (every alarm window pending, in calls of their own), then routine windows in batches of
        ``max_batch`` until ``budget_s`` is spent (the rest waits for the next step, so the loop keeps polling
        within ``max_poll_interval_ms`` under overload). Between routine batches the consumer polls without
        waiting, so an alarm that arrives while a routine backlog drains is answered next, not after it."""
        budget_s = self.config.tick_budget_s if budget_s is None else budget_s
        t0, done, n_verdicts, lost_all = time.monotonic(), [], 0, []
        stages = self.metrics.stages
        while True:
            with stages("cut"):
                items, lost = self.windower.ready(copy=False)  # ring views: np.stack in _score is their only copy
            self._pending.extend(items)
            lost_all += lost
            if any(it.alarm is not None for it in items):  # alarm windows never stay pending: only new ones can be
                n_verdicts += self._verdict_lane()
            if not self._pending or ((done or n_verdicts) and time.monotonic() - t0 >= budget_s) or self._holding(budget_s):
                break
            part, self._pending = self._pending[: self.config.max_batch], self._pending[self.config.max_batch :]
            scores, score_ms = self._score(part, self.scorer)
            with stages("publish"):
                self.publisher.scores(part, scores, score_ms, self.scorer.name)
            done.extend(part)
            if self._pending and budget_s != float("inf"):
                with stages("cut"):
                    for it in self._pending:  # the poll adds chunks: copy the waiting windows out of the rings first
                        it.materialize()
                self._poll(0)
        with stages("cut"):
            for it in self._pending:  # left for the next step, which adds chunks first: copy them out of the rings
                it.materialize()
        with stages("publish"):
            for lw in lost_all:
                self.publisher.lost(lw, self.scorer.name)
        if not done and not lost_all:
            return n_verdicts
        with stages("flush"):
            self._producer.flush()
        acked = time.time()
        if done:
            self.metrics.observe_latency((acked - np.array([it.sample_unix_s for it in done])) * 1e3)
            self._scored(len(done), acked)
        return len(done) + n_verdicts

    def _holding(self, budget_s: float) -> bool:
        """Routine windows wait for company (``routine_hold_s``): fewer than a full batch, the oldest not held long enough."""
        hold = self.config.routine_hold_s
        if hold <= 0 or budget_s == float("inf") or len(self._pending) >= min(self.config.max_batch, self.config.max_pending):
            return False
        return time.time() - min(it.ready_unix_s for it in self._pending) < hold

    def _scored(self, n: int, acked: float) -> None:
        self.metrics.inc("windows_scored", n)
        self.last_scored_monotonic = time.monotonic()
        self.metrics.last_scored_unix_s = acked

    def _verdict_lane(self) -> int:
        """Every pending alarm window, ahead of the routine ones: scored by ``verdicts`` in one call of their own (a
        service scorer sends it as concurrent requests), published and acknowledged before any routine work goes on.
        A routine copy of the same window still pending (cut before its alarm came) is superseded by the verdict. A
        verdict scorer with ``needs_patient_order`` (it shares per-patient state with the routine scorer) gets the
        alarms' patients' earlier pending routine windows scored first, by the routine scorer."""
        alarms = [it for it in self._pending if it.alarm is not None]
        keys = {(it.patient_id, it.end_s) for it in alarms}
        self._pending = [it for it in self._pending if it.alarm is None and (it.patient_id, it.end_s) not in keys]
        scorer = self.verdicts or self.scorer
        earlier = self._earlier_windows(alarms) if getattr(scorer, "needs_patient_order", False) else []
        if earlier:  # a verdict scorer that carries per-patient state sees each patient's windows in order
            scores, score_ms = self._score(earlier, self.scorer)
            with self.metrics.stages("publish"):
                self.publisher.scores(earlier, scores, score_ms, self.scorer.name)
        due = np.array([self._verdict_due(it) for it in alarms])
        k = getattr(scorer, "earlier_windows", 0)  # a verdict averaged over the patient's windows before the alarm's
        before = [self.windower.earlier(it, k) for it in alarms] if k else None
        scores, score_ms = self._score(alarms, scorer, due, stage="verdicts", earlier=before)
        with self.metrics.stages("publish"):
            self.publisher.scores(alarms, scores, score_ms, scorer.name, due)
        with self.metrics.stages("flush"):
            self._producer.flush()
        acked = time.time()
        self.metrics.observe_verdict_latency((acked - np.array([self._alarm_unix_s(it) for it in alarms])) * 1e3)
        self.metrics.observe_latency((acked - np.array([it.sample_unix_s for it in earlier + alarms])) * 1e3)
        self._scored(len(earlier) + len(alarms), acked)
        return len(earlier) + len(alarms)

    def _earlier_windows(self, alarms: list[WindowItem]) -> list[WindowItem]:
        """The routine windows still pending of the alarms' patients that end before the patient's first alarm window
        here, taken out of the routine queue (scored ahead of the verdicts, in window order). Later ones stay queued:
        they follow the alarm window in the patient's state."""
        first = {}
        for it in alarms:
            first[it.patient_id] = min(first.get(it.patient_id, np.inf), it.end_s)
        earlier = [it for it in self._pending if it.patient_id in first and it.end_s < first[it.patient_id]]
        if earlier:
            ids = {id(it) for it in earlier}
            self._pending = [it for it in self._pending if id(it) not in ids]
        return sorted(earlier, key=lambda it: it.end_s)

    @staticmethod
    def _alarm_unix_s(it: WindowItem) -> float:
        """Wall-clock time of the alarm's sample: the window's last sample, less the stream seconds between them."""
        return it.sample_unix_s - max(it.end_s - it.alarm.time_s, 0.0)

    def _verdict_due(self, it: WindowItem) -> float:
        return self._alarm_unix_s(it) + self.config.verdict_deadline_ms / 1e3

    def _score(self, items: list[WindowItem], scorer: Scorer, due: np.ndarray | None = None,
               stage: str = "score", earlier: list | None = None) -> tuple[list[ScoreOut], float]:
        with self.metrics.stages("batch"):
            batch = self._batch(items, due, earlier)
        t0 = time.perf_counter()

        def failed(e: Exception, n: int) -> None:
            log.warning("scorer %s failed on a batch of %d (%s: %s); retrying its halves", scorer.name, n, type(e).__name__, e)
            self.metrics.inc("scorer_failures")

        with self.metrics.stages(stage):
            scores = score_isolating(scorer, batch, failed)  # a window that breaks the scorer is marked alone
        ms = (time.perf_counter() - t0) * 1e3
        self.metrics.observe_batch(len(items), ms)
        return scores, ms

    def _batch(self, items: list[WindowItem], due: np.ndarray | None, earlier: list | None = None) -> WindowBatch:
        sample = np.array([it.sample_unix_s for it in items])
        return WindowBatch(
            patient_ids=[it.patient_id for it in items], window_end_s=np.array([it.end_s for it in items]),
            windows=np.stack([it.window for it in items]), masks=np.stack([it.mask for it in items]),
            alarm_types=[it.alarm_type for it in items], is_alarm=np.array([it.alarm is not None for it in items]),
            sample_unix_s=sample, deadline_unix_s=sample + self.config.deadline_ms / 1e3 if due is None else due, earlier=earlier,
        )

    def _forget_revoked(self) -> None:
        """Drop the state of partitions another consumer owns now; it re-reads them from the last commit. Waits until
        the rebalance has assigned the new partitions: until then the consumer's assignment still lists the revoked
        ones, and a partition given back in the same rebalance keeps its state."""
        with self._revoked_lock:
            if self._rebalancing:
                return
            keys, self._revoked = set(self._revoked), []
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        keys -= assigned  # revoked and given back to us in the same rebalance: keep the state
        gone = {p for t, p in keys if t == self.topics.waveforms}
        for pid in self.windower.forget_partitions(gone):
            self.risk_alarms.forget(pid)
        self._pending = [it for it in self._pending if it.partition not in gone]
        self.offsets.forget(keys)
        if keys:
            self.metrics.inc("partitions_released", len(keys))
            log.info("released %d revoked partitions", len(keys))

    # ------------------------------------------------------------------ offsets
    def commit(self, force: bool = False, only: set[tuple[str, int]] | None = None) -> dict:
        """Commit, per assigned partition, the offset below which every message is fully handled."""
        return self.offsets.commit(self._consumer, self.windower, self._pending, self.topics, self.metrics, force, only)

