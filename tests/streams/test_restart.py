"""A consumer SIGKILLed mid-replay and restarted loses no window: after de-duplication by (patient, window end)
every window has exactly one score in icu.risk. Real broker, real records, `holmes consume` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from streams import Topics, build_streams, ensure_topics, replay
from streams.testing import dedup_last, read_scores, read_topic, unique_group

ROOT = Path(__file__).resolve().parents[2]
START_S = 250.0


def _consume(settings, topics_prefix, group, member_path, log_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "holmes.cli", "consume", "--bootstrap-servers", settings.bootstrap_servers,
           "--topic-prefix", topics_prefix, "--group-id", group, "--scorer", "member", "--member-path", str(member_path)]
    log = open(log_path, "wb")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log


def _wait_for(pred, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class TestRestart:
    def test_sigkill_mid_replay_loses_nothing(self, kafka_broker, stream_records, member_path, tmp_path):
        settings, topics = kafka_broker.settings, Topics.with_prefix("restart")
        ensure_topics(settings, topics)
        streams = build_streams(stream_records)
        end_s = min(s.record.n_samples for s in streams) // 250
        expected = {(s.patient_id, float(e)) for s in streams for e in range(int(START_S) + 16, end_s + 1)}
        group = unique_group("restart")

        a, log_a = _consume(settings, "restart", group, member_path, tmp_path / "a.log")
        _wait_for(lambda: b"assigned" in (tmp_path / "a.log").read_bytes(), 60, "the first consumer's partitions")
        feeder = threading.Thread(target=replay, args=(settings, streams), daemon=True,
                                  kwargs=dict(speed=4.0, start_s=START_S, progress=False, topics=topics))
        feeder.start()
        # kill it once it has published part of the windows, while the replay is still running
        _wait_for(lambda: len(read_topic(settings, topics.risk, idle_s=0.0, timeout_s=2)) >= len(expected) // 5, 60,
                  "first scores")
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        log_a.close()
        before = len(read_scores(settings, topics.risk, min_messages=len(expected) // 5, idle_s=0.2))  # at least what was seen
        assert feeder.is_alive(), "the replay must still be running when the consumer dies"
        assert 0 < before < len(expected)

        b, log_b = _consume(settings, "restart", group, member_path, tmp_path / "b.log")
        try:
            feeder.join(60)
            _wait_for(lambda: set(dedup_last(read_scores(settings, topics.risk, idle_s=0.0, timeout_s=2))) >= expected,
                      90, "every window scored after the restart")
        finally:
            b.send_signal(signal.SIGINT)  # Ctrl-C: clean stop, commits what was published
            rc = b.wait(30)
            log_b.close()
        assert rc == 0, (tmp_path / "b.log").read_text()[-3000:]

        scores = read_scores(settings, topics.risk, min_messages=len(expected))
        latest = dedup_last(scores)
        assert set(latest) == expected  # exactly one per window after de-duplication, none missing, none extra
        by_key: dict = {}
        for s in scores:  # re-scored windows got the same answer (a later copy may answer the alarm)
            if s.key in by_key and by_key[s.key].alarm_type == s.alarm_type:
                assert abs(by_key[s.key].probability - s.probability) < 1e-9 and by_key[s.key].positive == s.positive
            by_key[s.key] = s
        assert sum(v.verdict is not None for v in latest.values()) == len(streams)
