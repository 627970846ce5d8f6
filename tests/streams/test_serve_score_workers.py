"""`holmes serve --score-workers N` (stream.score_workers): the features routine scorer spreads each batch over N
processes with the same probabilities and verdicts as one; any other routine scorer refuses N != 1 before it starts.
`--consumers N` (stream.consumers) is bounded, `--consumer-only` names the running service's addresses it lacks, and
the verdict blend (stream.verdict_blend) is on where the incremental routine scorer holds the patients' state; an extra consumer
that ends after the service is ready is restarted."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.holmes_config import HolmesConfig
from holmes.commands.serve import stream_scorers
from models.data import alarm_window
from models.errors import InvalidFieldError
from streams.parallel import ParallelPredict
from streams.scorer import WindowBatch


class _NoHandle:  # the routine features scorer never calls the service; the verdict scorer is only built here
    pass


def _batch(records, n):
    recs = records[:n]
    z = np.zeros(n)
    return WindowBatch(patient_ids=[r.name for r in recs], window_end_s=z + 300.0,
                       windows=np.stack([alarm_window(r) for r in recs]).astype(np.float32),
                       masks=np.stack([r.mask for r in recs]), alarm_types=[r.alarm_type for r in recs],
                       is_alarm=np.zeros(n, dtype=bool), sample_unix_s=z, deadline_unix_s=z + 1.0)


def test_features_routine_scorer_over_two_processes_scores_as_one(records):
    one, _ = stream_scorers(HolmesConfig.load(None, {"stream.routine_scorer": "features"}), _NoHandle())
    two, _ = stream_scorers(HolmesConfig.load(None, {"stream.routine_scorer": "features", "stream.score_workers": 2}), _NoHandle())
    try:
        assert isinstance(two.predict, ParallelPredict) and two.predict.workers == 2 and not isinstance(one.predict, ParallelPredict)
        assert one.name == two.name == "member:features-typed"
        batch = _batch(records, 41)  # above ParallelPredict's min_batch: half scored in the worker process
        a, b = one.score(batch), two.score(batch)
        np.testing.assert_allclose([s.probability for s in b], [s.probability for s in a], rtol=1e-12, atol=0)
        assert [s.positive for s in b] == [s.positive for s in a]
        assert two.predict.crashes == 0
    finally:
        two.close()
    assert not isinstance(two.predict, ParallelPredict)  # closed: scores in this process again


@pytest.mark.parametrize("routine", ["cascade", "serve", "incremental"])
def test_score_workers_with_another_routine_scorer_is_a_typed_error(routine):
    cfg = HolmesConfig.load(None, {"stream.routine_scorer": routine, "stream.score_workers": 2})
    with pytest.raises(InvalidFieldError) as e:
        stream_scorers(cfg, _NoHandle())
    assert e.value.field == "stream.score_workers" and e.value.value == 2 and routine in e.value.rule


@pytest.mark.parametrize("bad", [0, 17])
def test_score_workers_out_of_range_is_a_typed_error(bad):
    with pytest.raises(InvalidFieldError) as e:
        HolmesConfig.load(None, {"stream.score_workers": bad})
    assert "score_workers" in e.value.field and e.value.value == bad


@pytest.mark.parametrize("bad", [0, 9])
def test_consumers_out_of_range_is_a_typed_error(bad):
    with pytest.raises(InvalidFieldError) as e:
        HolmesConfig.load(None, {"stream.consumers": bad})
    assert "consumers" in e.value.field and e.value.value == bad


def test_consumer_only_without_the_running_service_is_a_typed_error():
    """``holmes serve --consumer-only`` joins a running service: without its Ray and Kafka addresses it names both."""
    from types import SimpleNamespace

    from holmes.commands.serve import run_consumer_only

    with pytest.raises(InvalidFieldError) as e:
        run_consumer_only(SimpleNamespace(duration_s=None, metrics_json=None), HolmesConfig.load(None, {"ray.address": "127.0.0.1:6379"}))
    assert e.value.field == "--consumer-only" and e.value.value == {"ray.address": "127.0.0.1:6379", "kafka.bootstrap_servers": None}


def test_verdict_blend_is_on_with_the_incremental_scorer_and_refused_without_it():
    from deploy.scorer import ServeScorer
    from streams.verdict_blend import VerdictBlend

    routine, verdicts = stream_scorers(HolmesConfig.load(None, {}), _NoHandle())  # deploy/holmes.yaml: incremental, blend null
    assert isinstance(verdicts, VerdictBlend) and verdicts.incremental is routine and isinstance(verdicts.verdicts, ServeScorer)
    # the committed shift: the consumer attaches K earlier windows, the routine scorer keeps K windows' features
    assert verdicts.shift is not None and verdicts.earlier_windows == verdicts.shift.k_row and verdicts.shift.k >= 1
    # the committed bag is on by default: the routine scorer keeps the most earlier windows any of its pipelines reads
    assert verdicts.bag is not None and len(verdicts.bag.members) == 5 and routine.history == max(verdicts.shift.k, verdicts.bag.max_k)
    routine_nobag, nobag = stream_scorers(HolmesConfig.load(None, {"stream.verdict_bag": False}), _NoHandle())
    assert nobag.bag is None and routine_nobag.history == nobag.shift.k
    with pytest.raises(InvalidFieldError) as e:
        stream_scorers(HolmesConfig.load(None, {"stream.verdict_bag_path": "/nonexistent/bag"}), _NoHandle())
    assert e.value.field == "stream.verdict_bag_path" and e.value.value == "/nonexistent/bag"
    _, unshifted = stream_scorers(HolmesConfig.load(None, {"stream.verdict_shift": False}), _NoHandle())
    assert unshifted.shift is None and unshifted.earlier_windows == 0 and unshifted.gate is None
    # the committed shift's definition gate is on by default, off on request
    assert verdicts.gate is not None and verdicts.gate is verdicts.shift.gate and "Ventricular_Tachycardia" in verdicts.gate.margins
    _, ungated = stream_scorers(HolmesConfig.load(None, {"stream.verdict_gate": False}), _NoHandle())
    assert ungated.gate is None and ungated.shift is not None and ungated.bag is None  # the bag's members are gated
    with pytest.raises(InvalidFieldError) as e:
        stream_scorers(HolmesConfig.load(None, {"stream.verdict_gate": False, "stream.verdict_bag": True}), _NoHandle())
    assert e.value.field == "stream.verdict_bag" and "verdict_gate off" in str(e.value.value)
    with pytest.raises(InvalidFieldError) as e:
        stream_scorers(HolmesConfig.load(None, {"stream.verdict_shift_path": "/nonexistent/shift.json"}), _NoHandle())
    assert e.value.field == "stream.verdict_shift_path" and e.value.value == "/nonexistent/shift.json"
    _, plain = stream_scorers(HolmesConfig.load(None, {"stream.verdict_blend": False}), _NoHandle())
    assert isinstance(plain, ServeScorer)
    _, plain = stream_scorers(HolmesConfig.load(None, {"stream.routine_scorer": "features"}), _NoHandle())
    assert isinstance(plain, ServeScorer)  # null: on only where the incremental state exists
    with pytest.raises(InvalidFieldError) as e:
        stream_scorers(HolmesConfig.load(None, {"stream.routine_scorer": "features", "stream.verdict_blend": True}), _NoHandle())
    assert e.value.field == "stream.verdict_blend" and "incremental" in e.value.rule and "features" in str(e.value.value)


def test_a_consumer_that_ends_after_the_service_is_ready_is_restarted_until_stop():
    """``ExtraConsumers.supervise``: a child SIGKILLed after the ready line is started again (after the backoff) and is
    listed in ``restarts`` with its exit code; ``stop`` ends the children with SIGTERM and restarts nothing more. The
    children here are small real processes that print the ready line, not consumers (no broker, no Ray)."""
    import signal
    import sys
    import time

    from deploy.holmes_config import HolmesConfig
    from holmes.commands.serve import ExtraConsumers

    child = [sys.executable, "-c", "import time; print('[serve] ready: consuming its share', flush=True); time.sleep(120)"]
    extra = ExtraConsumers(HolmesConfig.load(None, {}), 3, "localhost:1", "127.0.0.1:1", None, command=child)
    extra.RESTART_BACKOFF_S = 0.2

    def wait_for(pred, what, timeout_s=30.0):
        t = time.monotonic()
        while not pred():
            assert time.monotonic() - t < timeout_s, what
            time.sleep(0.05)

    try:
        wait_for(extra.ready, "the children's ready lines")
        extra.supervise(poll_s=0.05)
        first = extra.procs[1]
        first.send_signal(signal.SIGKILL)
        wait_for(lambda: extra.restarts and extra.procs[1] is not first and extra.ready(), "consumer 2 restarted and ready")
        assert extra.restarts[0]["consumer"] == 2 and extra.restarts[0]["exit_code"] == -signal.SIGKILL
        assert extra.restarts[0]["backoff_s"] == 0.2 and extra.procs[0].poll() is None and extra.procs[1].poll() is None
    finally:
        out = extra.stop(timeout_s=10)
    time.sleep(0.3)
    assert [o["rc"] for o in out] == [-signal.SIGTERM] * 2 and len(extra.restarts) == 1
    assert [len(o["restarts"]) for o in out] == [0, 1] and all(p.poll() is not None for p in extra.procs)
