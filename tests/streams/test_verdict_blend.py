"""The verdict lane (``streams.verdict_blend``): the blend of the service's row and the incremental side, the shift over
earlier windows, the definition gate, and what it does when a part fails."""

import time

import numpy as np
import pytest

from incremental_helpers import batch, first_records, stream_features, windows_of
from models.calibration import Calibrator
from models.data import load_dataset
from models.errors import InvalidFieldError
from models.verdict_shift import VerdictShift
from streams.incremental_scorer import IncrementalScorer, incremental_factory
from streams.scorer import ScoreOut, WindowBatch
from streams.verdict_blend import VerdictBlend


@pytest.fixture(scope="module")
def records(data_dir):
    return first_records(data_dir)


@pytest.fixture(scope="module")
def scorer_parts():
    s = incremental_factory()
    return s.member, s.calibrator


class _Row:
    """Stands in for the service's verdict scorer (a fixed plan-row answer), so the blend's arithmetic is seen alone."""

    name = "serve:holmes:verdicts"

    def __init__(self, probability):
        self.p = probability

    def score(self, b):
        return [ScoreOut(self.p, self.p is not None and self.p >= 0.2, 1, ("plan:row", "m1"), None if self.p is not None else "failed")
                for _ in range(len(b))]


def test_verdict_blend_is_the_mean_and_advances_the_patients_state(records, scorer_parts):
    member, cal = scorer_parts
    r = records[0]
    wins = windows_of(r, 100.0, 3)
    routine = IncrementalScorer(member, cal)
    blend = VerdictBlend(_Row(0.1), routine)
    assert blend.name == "serve:holmes:verdicts+features-typed-inc"
    routine.score(batch([(r.name, wins[0][0], wins[0][1], r.mask)]))
    out = blend.score(batch([(r.name, wins[1][0], wins[1][1], r.mask)]))  # the alarm window: one hop after the last
    alone = IncrementalScorer(member, cal).score(batch([(r.name, e, w, r.mask) for e, w in wins[:2]]))[1].probability
    assert out[0].probability == pytest.approx(0.5 * (0.1 + alone), abs=1e-12)
    assert out[0].positive == (out[0].probability >= 1 / 6) and out[0].models == ("plan:row", "m1", "features-typed-inc")
    first = routine.score(batch([(r.name, wins[2][0], wins[2][1], r.mask)]))[0].probability
    assert routine.counts == {"hop": 2, "same": 0, "restart": 1}  # the window after the alarm is a hop: the state went on
    again = blend.score(batch([(r.name, wins[2][0], wins[2][1], r.mask)]))  # an alarm that came after its window was scored
    assert routine.counts == {"hop": 2, "same": 1, "restart": 1}
    assert again[0].probability == pytest.approx(0.5 * (0.1 + first), abs=1e-12)


def test_verdict_blend_scores_out_of_order_alarm_windows_aside(records, scorer_parts):
    """A late alarm (its window older than the last one scored), an off-grid alarm time and a patient's second alarm in
    one batch are scored as streams that begin at the window's start, and leave the patient's state where it was."""
    member, cal = scorer_parts
    r = records[2]
    wins = windows_of(r, 100.0, 8)
    routine = IncrementalScorer(member, cal)
    blend = VerdictBlend(_Row(0.1), routine)
    for e, w in wins[:4]:  # 100 .. 103 scored, a hop each
        routine.score(batch([(r.name, e, w, r.mask)]))
    counts = dict(routine.counts)
    aside = lambda e, w: IncrementalScorer(member, cal).score(batch([(r.name, e, w, r.mask)]))[0].probability  # noqa: E731
    late = blend.score(batch([(r.name, wins[2][0], wins[2][1], r.mask)]))  # the alarm of 102 after 103 was scored
    assert late[0].probability == pytest.approx(0.5 * (0.1 + aside(*wins[2])), abs=1e-12)
    both = blend.score(batch([(r.name, wins[4][0], wins[4][1], r.mask), (r.name, wins[6][0], wins[6][1], r.mask)]))
    assert both[1].probability == pytest.approx(0.5 * (0.1 + aside(*wins[6])), abs=1e-12)  # the second: aside
    assert routine.counts == {**counts, "hop": counts["hop"] + 1}  # 104 went on; 102 and 106 did not
    assert blend.stats() == {"blend_aside": 2, "blend_failures": 0, "shift_row_skipped": 0, "verdicts_gated": 0, "gate_failures": 0,
                            "verdicts_vt_rescored": 0, "verdicts_bagged": 0, "bag_failures": 0, "bag_row_failures": 0,
                            "bag_skipped_deadline": 0}
    nxt = routine.score(batch([(r.name, wins[5][0], wins[5][1], r.mask)]))[0].probability
    assert routine.counts["hop"] == counts["hop"] + 2  # 105 follows 104: the state was never restarted
    ref = IncrementalScorer(member, cal)
    for e, w in wins[:6]:
        want = ref.score(batch([(r.name, e, w, r.mask)]))[0].probability
    assert nxt == want  # as if no alarm had come


def test_verdict_blend_advances_the_state_even_when_the_service_fails(records, scorer_parts):
    member, cal = scorer_parts
    r = records[0]
    wins = windows_of(r, 150.0, 3)

    class Down(_Row):
        def score(self, b):
            raise TimeoutError("service did not answer")

    routine = IncrementalScorer(member, cal)
    routine.score(batch([(r.name, wins[0][0], wins[0][1], r.mask)]))
    with pytest.raises(TimeoutError):
        VerdictBlend(Down(0.1), routine).score(batch([(r.name, wins[1][0], wins[1][1], r.mask)]))
    out = VerdictBlend(_Row(0.2), routine).score(batch([(r.name, wins[1][0], wins[1][1], r.mask)]))  # the consumer's retry
    routine.score(batch([(r.name, wins[2][0], wins[2][1], r.mask)]))
    assert routine.counts == {"hop": 2, "same": 1, "restart": 1} and out[0].probability is not None


def test_verdict_blend_keeps_the_rows_answer_when_a_part_fails(records, scorer_parts):
    member, cal = scorer_parts
    r = records[1]
    (end, w), = windows_of(r, 120.0, 1)
    missing = VerdictBlend(_Row(None), IncrementalScorer(member, cal)).score(batch([(r.name, end, w, r.mask)]))
    assert missing[0].probability is None and missing[0].degraded_reason == "failed"

    class Broken(IncrementalScorer):
        def score(self, b):
            raise RuntimeError("state lost")

    blend = VerdictBlend(_Row(0.3), Broken(member, cal))
    out = blend.score(batch([(r.name, end, w, r.mask)]))
    assert out[0].probability == 0.3 and out[0].positive and out[0].models == ("plan:row", "m1") and blend.failures == 1
    with pytest.raises(InvalidFieldError, match="cut"):
        VerdictBlend(_Row(0.3), Broken(member, cal), cut=1.5)


class _ByEnd(_Row):
    """A plan-row answer that depends on the window's end, so averaging over earlier windows shows; keeps each call's size."""

    def __init__(self):
        self.calls = []

    def score(self, b):
        self.calls.append(len(b))
        return [ScoreOut(0.05 + 0.02 * (e % 10), True, 1, ("plan:row", "m1"), None) for e in b.window_end_s]


def _with_earlier(b: WindowBatch, earlier) -> WindowBatch:
    return WindowBatch(b.patient_ids, b.window_end_s, b.windows, b.masks, b.alarm_types, b.is_alarm, b.sample_unix_s,
                       b.deadline_unix_s, earlier=earlier)


def test_verdict_shift_averages_each_side_over_the_earlier_windows(records, scorer_parts):
    member, cal = scorer_parts
    r, q = records[0], records[1]
    wins = windows_of(r, 100.0, 5)
    routine = IncrementalScorer(member, cal, capacity=1)  # the pool grows while history is kept
    shift = VerdictShift(2, Calibrator("platt", 1.3, -0.2))
    row = _ByEnd()
    blend = VerdictBlend(row, routine, shift=shift)
    assert blend.earlier_windows == 2 and routine.history == 2
    for e, w in wins[:4]:  # 100 .. 103, one hop each
        routine.score(batch([(r.name, e, w, r.mask)]))
    ref = IncrementalScorer(member, cal).score(batch([(r.name, e, w, r.mask) for e, w in wins]))
    (qe, qw), = windows_of(q, 150.0, 1)
    alarm = _with_earlier(batch([(r.name, wins[4][0], wins[4][1], r.mask), (q.name, qe, qw, q.mask)]),
                          [(np.stack([wins[3][1], wins[2][1]]), np.stack([r.mask, r.mask])), None])
    out = blend.score(alarm)
    assert row.calls == [4]  # the two alarm windows and the two earlier windows of the first, in one call
    by_end = lambda e: 0.05 + 0.02 * (e % 10)  # noqa: E731
    want = shift.blend([by_end(e) for e in (104.0, 103.0, 102.0)], [ref[i].probability for i in (4, 3, 2)])
    assert out[0].probability == pytest.approx(want, abs=1e-12) and out[0].positive == (want >= 1 / 6)
    assert out[0].models == ("plan:row", "m1", "features-typed-inc", "verdict-shift")
    # a patient the stream just met: no earlier windows on either side, the map of the plain mean
    alone = IncrementalScorer(member, cal).score(batch([(q.name, qe, qw, q.mask)]))[0].probability
    assert out[1].probability == pytest.approx(shift.blend([by_end(qe)], [alone]), abs=1e-12)
    # a deadline the row's call with the earlier windows would not keep (at its recent cost per window): the row answers
    # the alarm window alone, the incremental side still averages, and the verdict says so
    r2 = records[2]
    w2 = windows_of(r2, 100.0, 3)
    for e, w in w2[:2]:
        routine.score(batch([(r2.name, e, w, r2.mask)]))
    due = _with_earlier(batch([(r2.name, w2[2][0], w2[2][1], r2.mask)]), [(np.stack([w2[1][1], w2[0][1]]), np.stack([r2.mask] * 2))])
    due = WindowBatch(due.patient_ids, due.window_end_s, due.windows, due.masks, due.alarm_types, due.is_alarm, due.sample_unix_s,
                      np.array([time.time() + 0.25]), earlier=due.earlier)
    blend.row_ms_per_window = 100.0  # 3 windows ~ 300 ms > the ~250 ms left
    late = blend.score(due)
    assert row.calls[-1] == 1 and blend.stats()["shift_row_skipped"] == 1
    ref2 = IncrementalScorer(member, cal).score(batch([(r2.name, e, w, r2.mask) for e, w in w2]))
    assert late[0].probability == pytest.approx(shift.blend([by_end(w2[2][0])], [ref2[i].probability for i in (2, 1, 0)]), abs=1e-12)
    assert late[0].degraded_reason == "verdict_shift_row_skipped: deadline"
    # only windows the scorer saw count: after a gap (106 and 105 never came) a window has none before it
    routine.score(batch([(r.name, wins[4][0] + 3, wins[4][1], r.mask)]))
    assert len(routine.earlier_features(r.name, wins[4][0] + 3, 2)) == 0
    np.testing.assert_array_equal(routine.earlier_features(r.name, wins[4][0], 1)[0], stream_features(r, 84.0, 103.0))
    with pytest.raises(InvalidFieldError, match="verdict_shift.k"):
        VerdictShift(9, Calibrator("none"))


def _noisy_views(seed: int, n_row: int, n_inc: int, n: int = 600):
    """Synthetic out-of-fold data: labels, types, 5 folds, and ``n_row`` / ``n_inc`` windows per side, each a noisy view
    of the record's label (probabilities, shift 0 first); returns (rng, y, T, folds, row, inc)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    noisy = lambda: 1 / (1 + np.exp(-(2.0 * y - 1.0 + rng.normal(0, 1.6, n))))  # noqa: E731
    return (rng, y, ["Ventricular_Tachycardia"] * n, np.arange(n) % 5, np.stack([noisy() for _ in range(n_row)]),
            np.stack([noisy() for _ in range(n_inc)]))


def test_the_shift_is_chosen_where_the_earlier_windows_help_and_its_map_calibrates():
    """``models.verdict_shift.choose`` on synthetic out-of-fold data: when each window is a noisy view of the record's
    label, averaging more windows ranks better and K grows; when the earlier windows are pure noise, K stays 0."""
    from models.calibration import ece
    from models.verdict_shift import choose

    rng, y, T, folds, row, inc = _noisy_views(0, 5, 5)
    n = len(y)
    k, cal, figures = choose(row, inc, y, T, folds)
    assert k >= 2 and figures[k]["score"] > figures[0]["score"] and set(figures) == {0, 1, 2, 3, 4}
    b = 0.5 * (row[: k + 1].mean(0) + inc[: k + 1].mean(0))
    assert ece(y, cal.transform(b)) < ece(y, b)  # the averaged blend is compressed towards 1/2; the map undoes it
    noise = np.stack([row[0]] + [rng.random(n) for _ in range(4)]), np.stack([inc[0]] + [rng.random(n) for _ in range(4)])
    assert choose(*noise, y, T, folds)[0] == 0


def test_the_incremental_side_may_reach_further_back_than_the_row_and_k_may_be_chosen_by_brier():
    """With the row on the alarm window alone the candidates span every incremental shift given (here 0..8, where the row
    side holds one); averaging both sides stops at the shorter side. K chosen by the lowest out-of-fold Brier score
    grows where the earlier windows help, as K chosen by score does; any other criterion is a typed error."""
    from models.verdict_shift import best_k, candidates

    _, y, T, folds, row, inc = _noisy_views(1, 3, 9)
    cands = candidates(row[:1], inc, y, T, folds, k_row=0)
    assert set(cands) == set(range(9)) and all(0.0 < c["brier"] < 0.25 for c in cands.values())
    assert best_k(cands, "brier") >= 4 and cands[best_k(cands, "brier")]["brier"] < cands[0]["brier"]
    assert set(candidates(row, inc, y, T, folds)) == {0, 1, 2}
    with pytest.raises(InvalidFieldError, match="select_by"):
        best_k(cands, "auroc")
    with pytest.raises(InvalidFieldError, match="k_row"):
        candidates(row[:1], inc, y, T, folds, k_row=1)


def test_a_shift_with_the_row_on_the_alarm_window_sends_the_service_nothing_more(records, scorer_parts):
    """``k_row`` 0 (the served fit): the consumer attaches no earlier windows and the row answers the alarm window alone,
    while the incremental side still averages the alarm window and the K windows before it from the features it kept."""
    member, cal = scorer_parts
    r = records[0]
    wins = windows_of(r, 100.0, 4)
    routine = IncrementalScorer(member, cal)
    shift = VerdictShift(2, Calibrator("platt", 1.1, 0.2), k_row=0)
    row = _ByEnd()
    blend = VerdictBlend(row, routine, shift=shift)
    assert blend.earlier_windows == 0 and routine.history == 2
    for e, w in wins[:3]:
        routine.score(batch([(r.name, e, w, r.mask)]))
    ref = IncrementalScorer(member, cal).score(batch([(r.name, e, w, r.mask) for e, w in wins]))
    out = blend.score(batch([(r.name, wins[3][0], wins[3][1], r.mask)]))
    assert row.calls == [1]
    by_end = lambda e: 0.05 + 0.02 * (e % 10)  # noqa: E731
    want = shift.blend([by_end(wins[3][0])], [ref[i].probability for i in (3, 2, 1)])
    assert out[0].probability == pytest.approx(want, abs=1e-12) and out[0].degraded_reason is None
    assert out[0].models[-1] == "verdict-shift"
    with pytest.raises(InvalidFieldError, match="verdict_shift.k_row"):
        VerdictShift(1, Calibrator("none"), k_row=2)
    assert VerdictShift(3, Calibrator("none")).k_row == 3  # a file without k_row: the row averages as many as the incremental side


def test_the_definition_gate_caps_a_verdict_whose_window_misses_the_alarms_definition(data_dir, scorer_parts):
    """v756s: a false VT alarm on a regular ~55 bpm rhythm; the row says 0.6, the gate reads the window's fastest 5 ECG
    beats under 80 bpm and caps the verdict; with the batch's own features (fast) it does not; a broken gate gates nothing."""
    from models.data import alarm_window
    from models.definition_gate import NAME as GATE, DefinitionGate
    from models.features import FEATURE_NAMES, N_FEATURES

    member, cal = scorer_parts
    (r,), _ = load_dataset(data_dir, ["v756s"])
    b = batch([(r.name, 300.0, alarm_window(r), r.mask)])
    gate = DefinitionGate({"Ventricular_Tachycardia": 0.2}, {"Ventricular_Tachycardia": 0.02})
    plain = VerdictBlend(_Row(0.6), IncrementalScorer(member, cal)).score(b)
    blend = VerdictBlend(_Row(0.6), IncrementalScorer(member, cal), gate=gate)
    out = blend.score(b)
    assert plain[0].positive and plain[0].probability >= 0.3
    assert out[0].probability == 0.02 and not out[0].positive and out[0].models == plain[0].models + (GATE,)
    assert blend.stats()["verdicts_gated"] == 1 and blend.stats()["gate_failures"] == 0
    fast = np.full((1, N_FEATURES), np.nan)
    fast[0, FEATURE_NAMES.index("ECG1_max_hr5_bpm")] = 150.0
    carried = WindowBatch(b.patient_ids, b.window_end_s, b.windows, b.masks, b.alarm_types, b.is_alarm, b.sample_unix_s,
                          b.deadline_unix_s, features=fast)
    again = VerdictBlend(_Row(0.6), IncrementalScorer(member, cal), gate=gate).score(carried)
    assert again[0].probability == pytest.approx(plain[0].probability, abs=1e-12) and GATE not in again[0].models

    class Broken(DefinitionGate):
        def apply(self, p, reading, alarm_types):
            raise RuntimeError("gate lost")

    broken = VerdictBlend(_Row(0.6), IncrementalScorer(member, cal), gate=Broken({"Ventricular_Tachycardia": 0.2},
                                                                              {"Ventricular_Tachycardia": 0.02}))
    kept = broken.score(b)
    assert kept[0].probability == pytest.approx(plain[0].probability, abs=1e-12) and broken.gate_failures == 1


def test_the_gate_in_a_mixed_shifted_batch_caps_only_the_blended_windows_that_miss_their_definition(data_dir, scorer_parts):
    """One batch, as served (shift then gate): v756s (VT alarm, ~55 bpm) capped; v607l (a true VT, fastest 5 beats over
    100 bpm) and v756s's window under an alarm type the gate does not cover pass unchanged; a window whose row gave no
    answer keeps it; with the incremental side down, the row's answers go out alone and ungated."""
    from models.data import alarm_window
    from models.definition_gate import NAME as GATE, DefinitionGate

    member, cal = scorer_parts
    recs = {r.name: r for r in load_dataset(data_dir, ["v756s", "v607l"])[0]}
    slow, fast = recs["v756s"], recs["v607l"]
    items = [(slow, "Ventricular_Tachycardia"), (fast, "Ventricular_Tachycardia"), (slow, "Tachycardia")]
    b = WindowBatch([f"bed-{i}" for i in range(3)], np.full(3, 300.0), np.stack([alarm_window(r) for r, _ in items]).astype(np.float32),
                    np.stack([r.mask for r, _ in items]), [t for _, t in items], np.ones(3, dtype=bool), np.zeros(3), np.zeros(3))
    gate = DefinitionGate({"Ventricular_Tachycardia": 0.2, "Asystole": 0.2}, {"Ventricular_Tachycardia": 0.03, "Asystole": 0.02})
    shift = VerdictShift(0, Calibrator("platt", 1.3, -0.2))
    plain = VerdictBlend(_Row(0.6), IncrementalScorer(member, cal), shift=shift).score(b)
    blend = VerdictBlend(_Row(0.6), IncrementalScorer(member, cal), shift=shift, gate=gate)
    out = blend.score(b)
    assert all(s.positive for s in plain)
    assert out[0].probability == 0.03 and not out[0].positive and out[0].models[-1] == GATE
    for i in (1, 2):
        assert out[i].probability == plain[i].probability and GATE not in out[i].models
    assert blend.stats()["verdicts_gated"] == 1
    none = VerdictBlend(_Row(None), IncrementalScorer(member, cal), shift=shift, gate=gate).score(b)
    assert [s.probability for s in none] == [None] * 3

    class Broken(IncrementalScorer):
        def score(self, b):
            raise RuntimeError("state lost")

    alone = VerdictBlend(_Row(0.6), Broken(member, cal), shift=shift, gate=gate)
    assert [s.probability for s in alone.score(b)] == [0.6] * 3 and alone.gated == 0
