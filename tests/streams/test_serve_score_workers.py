"""`holmes serve --score-workers N` (stream.score_workers): the features routine scorer spreads each batch over N
processes with the same probabilities and verdicts as one; any other routine scorer refuses N != 1 before it starts.
`--consumers N` (stream.consumers) is bounded, `--consumer-only` names the running service's addresses it lacks, and
the verdict blend (stream.verdict_blend) is on where the incremental routine scorer holds the patients' state."""

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
    from streams.incremental_scorer import VerdictBlend

    routine, verdicts = stream_scorers(HolmesConfig.load(None, {}), _NoHandle())  # deploy/holmes.yaml: incremental, blend null
    assert isinstance(verdicts, VerdictBlend) and verdicts.incremental is routine and isinstance(verdicts.verdicts, ServeScorer)
    # the committed shift: the consumer attaches K earlier windows, the routine scorer keeps K windows' features
    assert verdicts.shift is not None and verdicts.earlier_windows == verdicts.shift.k_row and routine.history == verdicts.shift.k >= 1
    _, unshifted = stream_scorers(HolmesConfig.load(None, {"stream.verdict_shift": False}), _NoHandle())
    assert unshifted.shift is None and unshifted.earlier_windows == 0
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
