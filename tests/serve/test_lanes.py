"""The verdict lane under a routine burst, with the real broker and a real Ray instance: routine windows of 48 beds
arrive faster than the routine path scores them (a backlog of seconds builds up), then all 48 alarms come in the
same second. Every alarm is still answered within its 1 s deadline, by the floor row (never a weaker one),
while the routine windows wait and fall to cheaper rows."""

from __future__ import annotations

import time

from streams.testing import dedup_last, read_scores, unique_group


class BusyRoutine:
    """The service's routine lane with every batch held ``hold_s`` longer: the cores busy with routine work."""

    def __init__(self, inner, hold_s: float):
        self.inner, self.hold_s = inner, hold_s
        self.name = "busy-" + inner.name

    def score(self, batch):
        time.sleep(self.hold_s)
        return self.inner.score(batch)


def test_routine_burst_neither_delays_nor_weakens_verdicts(service, plan, records):
    from deploy.scorer import ServeScorer
    from streams.broker import Topics
    from streams.consumer import ConsumerConfig
    from streams.pipeline import ReplayPlan, StreamPipeline
    from streams.replay import build_streams
    from streams.windows import WindowConfig

    handle, _ = service
    beds = 48
    streams = build_streams(records[:24], beds=beds)
    # 12 batches of 4 a second, each held 0.1 s: 1.2 s a second plus the scoring. A verdict waits at most for the routine
    # call in flight: 0.25 s batches of 8 left the verdicts ~10 ms of margin in a slow stretch of a full suite run
    routine = BusyRoutine(ServeScorer(handle=handle, deadline_ms=1000.0), hold_s=0.1)
    verdicts = ServeScorer(handle=handle, deadline_ms=1000.0, lane="verdict")
    topics = Topics.with_prefix(unique_group("lanes"))
    pipeline = StreamPipeline(routine, None, topics, WindowConfig(window_s=16.0, hop_s=1.0),
                              ConsumerConfig(group_id=unique_group("lanes"), max_batch=4), verdicts=verdicts,
                              replay=ReplayPlan(streams, speed=1.0, start_s=270.0, end_s=301.0), idle_stop_s=2.0,
                              progress_every_s=None)
    with pipeline:
        metrics = pipeline.run(timeout_s=180)
        scores = list(dedup_last(read_scores(pipeline.settings, topics.risk, timeout_s=20.0)).values())
    answers = [s for s in scores if s.alarm_time_s is not None]
    routine_scores = [s for s in scores if s.alarm_time_s is None]
    floor = plan.floor()
    assert floor.name == "both" and len(answers) == beds and metrics["counters"]["verdicts"] == beds
    alarm_unix = {s.patient_id: s.sample_unix_s - (s.window_end_s - s.alarm_time_s) for s in answers}
    verdict_ms = [(s.published_unix_s - alarm_unix[s.patient_id]) * 1e3 for s in answers]
    routine_ms = sorted((s.published_unix_s - s.sample_unix_s) * 1e3 for s in routine_scores)
    # the burst was real: routine windows waited seconds behind each other
    assert len(routine_scores) == beds * 14 and routine_ms[-1] > 2000  # windows end 286..299 (the records end at 300)
    # ... and no verdict waited for them: all within the deadline, none flagged, all by the floor row
    assert max(verdict_ms) < 1000, sorted(verdict_ms)[-5:]
    assert all(not s.degraded and s.verdict is not None and s.models[0] == f"plan:{floor.name}" for s in answers)
    assert metrics["counters"].get("verdicts_late", 0) == 0 and metrics["verdict_e2e_ms"]["p99"] < 1000
    # the routine lane is where the shedding happens: past their deadline, routine requests get the cheapest row
    assert any(s.degraded and "deadline_unreachable_cheapest_ensemble" in s.degraded_reasons for s in routine_scores)
