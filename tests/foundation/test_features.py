"""Features on real records are clinically plausible; the extractor survives every defect in the data."""

import numpy as np
import pytest

from models.data import ALARM_S, alarm_window, list_records, load_dataset
from models.features import FEATURE_NAMES, N_FEATURES, extract, extract_batch


def f(vec, name):
    return vec[FEATURE_NAMES.index(name)]


@pytest.fixture(scope="module")
def all_records(data_dir):
    records, _ = load_dataset(data_dir)
    return records


@pytest.fixture(scope="module")
def alarm_feats(all_records):
    return np.stack([extract(alarm_window(r), r.mask) for r in all_records])


def test_shape_and_finite_where_present(all_records, alarm_feats):
    assert alarm_feats.shape == (len(all_records), N_FEATURES)
    ecg_cols = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith("ECG1_")]
    assert np.isfinite(alarm_feats[:, ecg_cols]).mean() > 0.95


def test_true_asystole_has_long_pause_and_no_pulse(all_records, alarm_feats):
    types = np.array([r.alarm_type for r in all_records])
    y = np.array([r.label for r in all_records])
    gap = alarm_feats[:, FEATURE_NAMES.index("cons_max_gap_s")]
    true_asys, false_asys = (types == "Asystole") & (y == 1), (types == "Asystole") & (y == 0)
    assert np.nanmedian(gap[true_asys]) > 3.5  # a pause of several seconds all sources agree on
    assert np.nanmedian(gap[false_asys]) < 2.0
    for r, row in zip(all_records, alarm_feats):
        if r.alarm_type == "Asystole" and r.label == 1 and r.mask[2]:
            assert f(row, "ABP_max_gap_s") > 3.0 or f(row, "ABP_last_n_beats") <= 3, r.name


def test_heart_rate_separates_brady_and_tachy(all_records, alarm_feats):
    types = np.array([r.alarm_type for r in all_records])
    y = np.array([r.label for r in all_records])
    slow = alarm_feats[:, FEATURE_NAMES.index("cons_min_hr5_bpm")]
    fast = alarm_feats[:, FEATURE_NAMES.index("cons_max_hr17_bpm")]
    assert np.nanmedian(slow[(types == "Bradycardia") & (y == 1)]) < 45
    assert np.nanmedian(slow[(types == "Bradycardia") & (y == 0)]) > 50
    assert np.nanmedian(fast[(types == "Tachycardia") & (y == 1)]) > 95
    hr = alarm_feats[:, FEATURE_NAMES.index("ECG1_hr_bpm")]
    assert 50 < np.nanmedian(hr) < 120  # ICU population heart rate, beats per minute


def test_defects_never_crash(all_records):
    r = all_records[0]
    w = alarm_window(r).copy()
    cases = {
        "all-nan": np.full_like(w, np.nan),
        "flat": np.zeros_like(w),
        "nan-run": np.where(np.arange(w.shape[1]) % 1000 < 400, np.nan, w),
        "saturated": np.clip(w, -0.01, 0.01),
    }
    for name, x in cases.items():
        v = extract(x, r.mask)
        assert v.shape == (N_FEATURES,), name
        assert not np.isinf(v).any(), name
    v = extract(np.zeros_like(w), np.zeros(5, bool))
    assert np.isnan(f(v, "ECG1_hr_bpm"))  # an absent slot gives NaN features, not an error
    flat = extract(cases["flat"], r.mask)
    assert f(flat, "ECG1_n_beats") == 0 and f(flat, "ECG1_max_gap_s") == pytest.approx(16.0)


def test_batch_equals_one_by_one(all_records):
    rs = all_records[:6]
    W = np.stack([alarm_window(r) for r in rs])
    M = np.stack([r.mask for r in rs])
    np.testing.assert_array_equal(extract_batch(W, M), np.stack([extract(w, m) for w, m in zip(W, M)]))


def test_batch_equals_one_by_one_mixed(all_records):
    """A batch mixing full, partly absent, NaN-holed and flat windows gives each window's own features exactly."""
    rs = all_records[:4] + [r for r in all_records if not r.mask[:4].all()][:4]
    W = [alarm_window(r) for r in rs]
    M = [r.mask.copy() for r in rs]
    w = W[0].copy()
    idx = np.arange(w.shape[1])
    W += [np.where(idx % 1000 < 400, np.nan, w), np.zeros_like(w), np.where(idx < 3000, np.nan, w), w]
    m_one_ecg = rs[0].mask.copy()
    m_one_ecg[0] = False
    M += [rs[0].mask, rs[0].mask, rs[0].mask, m_one_ecg]
    W, M = np.stack(W), np.stack(M)
    batch = extract_batch(W, M)
    single = np.stack([extract(w, m) for w, m in zip(W, M)])
    assert np.array_equal(batch, single, equal_nan=True)
    assert np.array_equal(extract_batch(W[::-1], M[::-1])[::-1], batch, equal_nan=True)  # order in the batch is irrelevant


def test_fast_helpers_equal_numpy_and_scipy():
    """The shortcuts behind the features give exactly numpy's/scipy's values (trained models depend on them)."""
    from scipy import signal

    from models.beats import _sos, filtered, median_rows, percentiles_rows

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 1000, 4001):
        x = np.round(rng.standard_normal((3, n)) * 4) / 4  # ties
        for qs in ([1, 99], [2, 98], [99, 1], [5, 95], [0, 50, 100]):
            assert np.array_equal(percentiles_rows(x, qs), np.percentile(x, qs, axis=-1).T), (n, qs)
        assert np.array_equal(median_rows(x), np.median(x, axis=-1)), n
    x = rng.standard_normal((2, 3, 4000)) * np.array([1e-3, 1.0, 50.0])[:, None]
    for kind in ("ecg", "pulse"):
        assert np.array_equal(filtered(x, kind, 250), signal.sosfiltfilt(_sos(kind, 250), x, axis=-1))

