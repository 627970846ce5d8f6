"""Incremental per-bed features: independent of how streams are cut, per bed, equal to the batch definitions
where they are the same, plausible rates on synthetic and real signals, typed errors."""

import numpy as np
import pytest
from scipy import signal

from models.beats import _sos
from models.data import ALARM_S, alarm_window, load_dataset
from models.errors import InvalidFieldError
from models.features import FEATURE_NAMES, N_FEATURES, extract_batch
from models.incremental import IncrementalFeatures

FS = 250
QUALITY = [i for i, n in enumerate(FEATURE_NAMES) if n.endswith(("_nan_frac", "_flat_frac", "_sat_frac"))]


def col(name):
    return FEATURE_NAMES.index(name)


@pytest.fixture(scope="module")
def records(data_dir):
    recs, _ = load_dataset(data_dir)
    return recs


def streams(recs, seconds):
    """[B, 5, seconds * FS] float64 of the records' first seconds, NaN where a slot is absent."""
    s = np.stack([r.signals[:, : seconds * FS] for r in recs]).astype(np.float64)
    m = np.stack([r.mask for r in recs])
    s[~m] = np.nan
    return s, m


def feed(inc, s, sizes):
    j = 0
    for m in sizes:
        inc.push(s[:, :, j : j + m])
        j += m
    assert j == s.shape[2]


def test_features_do_not_depend_on_how_the_stream_is_cut(records):
    s, m = streams(records[:6], 40)
    whole = IncrementalFeatures(6)
    whole.push(s)
    hops = IncrementalFeatures(6)
    feed(hops, s, [FS] * 40)
    rng = np.random.default_rng(3)
    sizes = []
    while sum(sizes) < s.shape[2]:
        sizes.append(int(min(rng.integers(1, 700), s.shape[2] - sum(sizes))))
    ragged = IncrementalFeatures(6)
    j = 0
    for size in sizes:  # features asked for in between must not disturb the state
        ragged.push(s[:, :, j : j + size])
        j += size
        if j % FS == 0 and j >= 16 * FS:
            ragged.features(m)
    a, b, c = whole.features(m), hops.features(m), ragged.features(m)
    assert np.isfinite(a[:, col("ECG1_hr_bpm")]).all()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_beds_are_independent(records):
    s, m = streams(records[:3], 30)
    alone = IncrementalFeatures(1)
    alone.push(s[:1])
    bad = s.copy()
    bad[1] = np.nan  # bed 1's stream is all gaps, bed 2's is garbage
    bad[2, :, ::7] = np.inf
    many = IncrementalFeatures(3)
    many.push(bad)
    np.testing.assert_array_equal(many.features(m)[0], alone.features(m[:1])[0])
    split = IncrementalFeatures(3)  # beds fed in separate calls, in pieces of different sizes
    split.push(bad[[2, 0]][:, :, : 10 * FS], beds=[2, 0])
    split.push(bad[[1]][:, :, : 3 * FS], beds=[1])
    split.push(bad[[1]][:, :, 3 * FS :], beds=[1])
    split.push(bad[[0, 2]][:, :, 10 * FS :], beds=[0, 2])
    np.testing.assert_array_equal(split.features(m), many.features(m))
    assert np.isnan(many.features(m)[1, col("ECG1_hr_bpm")])  # a bed with no data: no beats, no error


def test_filter_is_scipy_forward_filter_from_steady_state(records):
    s, _ = streams(records[:2], 20)
    inc = IncrementalFeatures(2)
    inc.push(s)
    for bed in range(2):
        for lead, (group, kind) in enumerate([(inc.ecg, "ecg"), (inc.pulse, "pulse")]):
            x = s[bed, 2 * lead]
            if not np.isfinite(x).all():
                continue
            sos = _sos(kind, FS)
            y, _ = signal.sosfilt(sos, x, zi=signal.sosfilt_zi(sos) * x[0])
            per_second = y.reshape(-1, FS)
            expect = per_second.max(-1) - per_second.min(-1)
            got = group.ordered(group.rng, np.array([2 * bed]))[0]
            np.testing.assert_allclose(got, expect[-16:], rtol=1e-9, atol=1e-12)


def synthetic(bpm, seconds=40, ecg_noise=0.02, seed=0):
    """ECG: narrow Gaussian QRS spikes (1 mV); ABP: a pulse wave 40 mmHg over 80, both at ``bpm``."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * FS) / FS
    beats = np.arange(0.3, seconds, 60.0 / bpm)
    ecg = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats) + ecg_noise * rng.standard_normal(len(t))
    phase = (t[:, None] - beats[None]) * bpm / 60.0
    wave = np.where((phase >= 0) & (phase < 1), np.sin(np.pi * np.clip(phase, 0, 1) ** 0.7) ** 2, 0.0).sum(-1)
    x = np.full((5, len(t)), np.nan)
    x[0], x[1], x[2] = ecg, 0.8 * ecg, 80 + 40 * wave
    return x


@pytest.mark.parametrize("bpm", [40, 75, 150])
def test_synthetic_rates(bpm):
    inc = IncrementalFeatures(1)
    inc.push(synthetic(bpm)[None])
    row = inc.features(np.array([[True, True, True, False, False]]))[0]
    for name in ("ECG1_hr_bpm", "ECG2_hr_bpm", "ABP_hr_bpm", "ECG1_max_hr17_bpm", "ABP_min_hr5_bpm"):
        assert abs(row[col(name)] - bpm) < 2.0, (name, row[col(name)])
    assert abs(row[col("ECG1_n_beats")] - 16 * bpm / 60) <= 1.5
    assert row[col("ecg_agreement")] == pytest.approx(1.0)
    assert row[col("ABP_amp")] > 30 and abs(row[col("ecg_minus_pulse_bpm")]) < 2
    assert np.isnan(row[col("PPG_hr_bpm")])  # absent slot
    assert row[col("n_good_sources")] == 3


def test_pause_is_seen_as_it_happens():
    x = synthetic(75, seconds=40)
    x[:3, 34 * FS :] = x[:3, 34 * FS][:, None]  # every signal freezes 6 s before the window's end (asystole)
    inc = IncrementalFeatures(1)
    inc.push(x[None])
    row = inc.features(np.array([[True, True, True, False, False]]))[0]
    assert row[col("cons_max_gap_s")] > 5.5
    assert row[col("ECG1_last_n_beats")] <= 3


def test_same_definitions_as_batch_where_they_are_the_same(records):
    recs = records[:60]
    n = int(ALARM_S * FS)
    s, m = streams(recs, int(ALARM_S))
    inc = IncrementalFeatures(len(recs))
    for h in range(n // FS):
        inc.push(s[:, :, h * FS : (h + 1) * FS])
    got = inc.features(m)
    batch = extract_batch(np.stack([alarm_window(r) for r in recs]), m)
    assert got.shape == (len(recs), N_FEATURES)
    np.testing.assert_array_equal(got[:, QUALITY], batch[:, QUALITY])  # NaN, flat and saturated fractions: exact
    for lead in ("ECG1", "ECG2"):
        clean = m[:, int(lead[-1]) - 1] & (batch[:, col(f"{lead}_nan_frac")] == 0)
        k = col(f"{lead}_kurtosis")
        np.testing.assert_allclose(got[clean, k], batch[clean, k], rtol=1e-6)
    # rates of regular rhythms agree with the batch detector's (different filters and thresholds, same beats);
    # windows with a few scattered "beats" in a flat line are no rhythm (there the incremental detector finds none)
    regular = (batch[:, col("ECG1_rr_cv")] < 0.1) & (batch[:, col("ECG1_n_beats")] >= 8)
    assert regular.sum() >= 10
    diff = np.abs(got[regular, col("ECG1_hr_bpm")] - batch[regular, col("ECG1_hr_bpm")])
    assert np.median(diff) < 2.0 and np.mean(diff < 5) > 0.8
    pulse = (batch[:, col("ABP_rr_cv")] < 0.1) & (batch[:, col("ABP_n_beats")] >= 8)
    diff = np.abs(got[pulse, col("ABP_hr_bpm")] - batch[pulse, col("ABP_hr_bpm")])
    assert np.median(diff) < 2.0 and np.mean(diff < 5) > 0.8


def test_reset_starts_a_bed_again(records):
    s, m = streams(records[:2], 50)
    inc = IncrementalFeatures(2)
    inc.push(s[:, :, : 20 * FS])
    inc.reset([1])
    assert inc.samples().tolist() == [20 * FS, 0]
    inc.push(s[[1]][:, :, 20 * FS : 30 * FS], beds=[1])
    assert np.isnan(inc.features(m[[1]], beds=[1])).all()  # under a window since the reset
    inc.push(s[[1]][:, :, 30 * FS :], beds=[1])
    fresh = IncrementalFeatures(1)
    fresh.push(s[[1]][:, :, 20 * FS :])
    np.testing.assert_array_equal(inc.features(m[[1]], beds=[1]), fresh.features(m[[1]]))
    inc.push(s[[0]][:, :, 20 * FS : 20 * FS + 100], beds=[0])
    assert np.isnan(inc.features(m[[0]], beds=[0])).all()  # not at a whole second


@pytest.mark.parametrize("call, field", [
    (lambda inc: inc.push(np.zeros((2, 5, 10))), "chunk"),
    (lambda inc: inc.push(np.zeros((3, 3, 10))), "chunk"),
    (lambda inc: inc.push(np.zeros((1, 5, 10)), beds=[3]), "beds"),
    (lambda inc: inc.push(np.zeros((2, 5, 10)), beds=[0, 0]), "beds"),
    (lambda inc: inc.features(np.ones((2, 4))), "masks"),
])
def test_bad_input_is_a_typed_error(call, field):
    inc = IncrementalFeatures(3)
    with pytest.raises(InvalidFieldError) as e:
        call(inc)
    assert e.value.field == field


def test_beds_out_of_phase_and_bad_sizes_are_refused():
    inc = IncrementalFeatures(2)
    inc.push(np.zeros((1, 5, 10)), beds=[0])
    with pytest.raises(InvalidFieldError) as e:
        inc.push(np.zeros((2, 5, 10)))
    assert e.value.field == "beds" and e.value.value == [0, 10]
    for kw, field in ((dict(n_beds=0), "n_beds"), (dict(n_beds=1, window_s=15.5), "window_s")):
        with pytest.raises(InvalidFieldError) as e:
            IncrementalFeatures(**kw)
        assert e.value.field == field
