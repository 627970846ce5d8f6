"""The stream side as one piece: a broker (the embedded one when no cluster is given), the topics, an optional
replay of recorded patients feeding it, and the consumer scoring them, with the stop rules every command
shares. ``holmes consume``, ``holmes demo``, ``holmes serve`` and the stream benchmarks all run this.

    with StreamPipeline(scorer, verdicts=serve_verdicts, replay=ReplayPlan(streams, speed=1.0)) as p:
        metrics = p.run()                     # until the replay is over and nothing is left to score

The replay starts once the consumer owns its partitions, so end-to-end latency measures scoring, not the
consumer group's start-up. ``run`` stops on ``request_stop()`` (signals), after ``timeout_s``, or, with a
replay, once the replay ended and nothing became ready for ``idle_stop_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from .broker import EmbeddedBroker, KafkaSettings, Topics, ensure_topics
from .consumer import ConsumerConfig, StreamConsumer
from .windows import WindowConfig

log = logging.getLogger(__name__)


@dataclass
class ReplayPlan:
    """Recorded patients to replay into the pipeline's broker (``streams.replay.replay`` arguments)."""

    streams: list
    speed: float | None = 1.0
    start_s: float = 0.0
    end_s: float | None = None
    stagger_s: float = 0.0
    alarm_every: int = 1
    linger_ms: int | None = None


class StreamPipeline:
    def __init__(self, scorer, settings: KafkaSettings | None = None, topics: Topics | None = None,
                 window: WindowConfig | None = None, config: ConsumerConfig | None = None, verdicts=None,
                 replay: ReplayPlan | None = None, idle_stop_s: float = 3.0, progress_every_s: float | None = 10.0):
        self.scorer = scorer
        self.verdicts = verdicts
        self.settings = settings
        self.topics = topics or Topics()
        self.window = window or WindowConfig()
        self.config = config or ConsumerConfig()
        self.replay_plan = replay
        self.idle_stop_s = idle_stop_s
        self.progress_every_s = progress_every_s
        self.broker: EmbeddedBroker | None = None
        self.consumer: StreamConsumer | None = None
        self.replay_done = threading.Event()
        self.replay_stats = None
        self._feeder: threading.Thread | None = None
        self._ready_callbacks: list = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "StreamPipeline":
        if self.settings is None:
            self.broker = EmbeddedBroker().start()
            self.settings = self.broker.settings
        ensure_topics(self.settings, self.topics)
        self.consumer = StreamConsumer(self.settings, self.scorer, self.window, self.config, topics=self.topics,
                                       verdicts=self.verdicts).start()
        if self.replay_plan is not None:
            self._feeder = threading.Thread(target=self._replay, name="replay", daemon=True)
        return self

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.bootstrap_servers

    def on_ready(self, callback) -> None:
        """Call ``callback(pipeline)`` once, when the consumer owns its partitions (it is consuming)."""
        self._ready_callbacks.append(callback)

    def request_stop(self, *_args) -> None:
        """Stop after the current step (safe from a signal handler)."""
        self.replay_done.set()
        if self.consumer is not None:
            self.consumer.request_stop()

    def close(self) -> None:
        self.replay_done.set()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> "StreamPipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ run
    def _replay(self) -> None:
        from .replay import replay

        p = self.replay_plan
        try:
            self.replay_stats = replay(self.settings, p.streams, speed=p.speed, start_s=p.start_s, end_s=p.end_s, progress=False,
                                       stop=self._stopping, topics=self.topics, stagger_s=p.stagger_s,
                                       alarm_every=p.alarm_every, linger_ms=p.linger_ms)
        except Exception:  # a replay that fails ends the run, it does not hang it
            log.exception("replay failed")
        finally:
            self.replay_done.set()

    def _stopping(self) -> bool:
        return self.consumer is None or self.consumer._stop

    def run(self, timeout_s: float | None = None) -> dict:
        """Consume until stopped; returns the consumer's metrics (and the replay's counts)."""
        if self.consumer is None:
            self.start()
        state = {"ready": False, "report": time.monotonic(), "done_at": None}

        def until(c: StreamConsumer) -> bool:
            if not state["ready"] and c._consumer is not None and c._consumer.assignment():
                state["ready"] = True
                for cb in self._ready_callbacks:
                    cb(self)
                if self._feeder is not None:
                    self._feeder.start()
            if self.progress_every_s and time.monotonic() - state["report"] >= self.progress_every_s:
                state["report"] = time.monotonic()
                s = c.metrics.snapshot()
                log.info("windows %d, verdicts %d, dead letters %d, e2e p50/p99 %s/%s ms", s["counters"].get("windows_scored", 0),
                         s["counters"].get("verdicts", 0), s["counters"].get("dead_letters", 0), s["e2e_ms"].get("p50"),
                         s["e2e_ms"].get("p99"))
            if self._feeder is None or not self.replay_done.is_set():
                return False
            if state["done_at"] is None:
                state["done_at"] = time.monotonic()
            idle_s = time.monotonic() - max(c.last_scored_monotonic, state["done_at"])
            return idle_s > (self.idle_stop_s if c.metrics.counters["windows_scored"] else 30.0)

        metrics = self.consumer.run(timeout_s=timeout_s, until=until)
        if self.replay_stats is not None:
            metrics["replay"] = self.replay_stats.as_dict()
        return metrics
