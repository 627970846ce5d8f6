"""The compiled per-row stages equal the scipy/numpy reference: on signals built to hit the edge cases, and on
the real development windows (every record's alarm window and a sliding sample)."""

import numpy as np
import pytest
from scipy import signal

from models import beat_kernels
from models.beats import rhythm
from models.data import alarm_window, load_dataset, window
from models.errors import InvalidFieldError
from models.features import COUNT_FEATURES, FEATURE_NAMES, extract_batch

K = beat_kernels.kernels()
COUNTS = [FEATURE_NAMES.index(n) for n in COUNT_FEATURES]


def test_numba_is_installed():
    assert beat_kernels.available(), "numba is a dependency of holmes-icu (pyproject.toml)"


def _signals():
    rng = np.random.default_rng(3)
    t = np.arange(4000) / 250
    yield np.sin(2 * np.pi * 1.3 * t) + 0.2 * rng.standard_normal(4000)  # noisy rhythm: many close maxima
    yield np.round(np.sin(2 * np.pi * 0.9 * t) * 8) / 8  # plateaus of every width
    yield np.abs(rng.standard_normal(4000)) ** 3  # spiky
    x = np.zeros(4000)
    x[[0, 5, 6, 100, 140, 3999]] = [9.0, 3.0, 3.0, 2.0, 2.5, 9.0]  # peaks at the edges do not count
    yield x
    yield np.zeros(4000)


@pytest.mark.parametrize("k", range(5))
def test_peaks_equal_scipy(k):
    x = list(_signals())[k]
    X = np.ascontiguousarray(x[None])
    nan = np.full(1, np.nan)
    for distance in (1, 50, 62):
        for h in (None, 0.0, 0.5, float(np.percentile(x, 90))):
            want, _ = signal.find_peaks(x, height=h, distance=distance)
            pos, wid, cnt = K["peaks_rows"](X, nan if h is None else np.array([h]), nan, distance, True)
            assert np.array_equal(pos, want), (k, distance, h)
            if len(want):
                assert np.array_equal(wid, signal.peak_widths(x, want, rel_height=0.5)[0])
        for p in (0.01, 0.3, 2.0):
            want, _ = signal.find_peaks(x, prominence=p, distance=distance)
            pos, _, cnt = K["peaks_rows"](X, nan, np.array([p]), distance, False)
            assert np.array_equal(pos, want) and cnt[0] == len(want), (k, distance, p)


def test_rows_are_independent_and_inf_height_finds_nothing():
    xs = np.stack(list(_signals())[:3])
    pos, _, cnt = K["peaks_rows"](xs, np.array([0.0, np.inf, 0.0]), np.full(3, np.nan), 50, False)
    assert cnt[1] == 0 and cnt[0] > 0 and cnt[2] > 0
    alone, _, _ = K["peaks_rows"](np.ascontiguousarray(xs[2:]), np.zeros(1), np.full(1, np.nan), 50, False)
    assert np.array_equal(pos[cnt[0]:], alone)


def test_rhythm_rows_equal_rhythm():
    rng = np.random.default_rng(1)
    rows = [np.empty(0), np.array([3.0]), np.array([2.0, 2.5]), np.sort(rng.uniform(0, 16, 5)), np.sort(rng.uniform(0, 16, 40)),
            np.arange(0.1, 16, 0.2), np.array([1.0, 9.0, 15.9])]
    t = np.concatenate(rows)
    got = K["rhythm_rows"](t, np.array([len(r) for r in rows], dtype=np.int64), 16.0, 8.0)
    for r, g in zip(rows, got):
        want = np.array(rhythm(r, 16.0) + rhythm(r[r >= 8.0] - 8.0, 8.0))
        np.testing.assert_allclose(g, want, rtol=1e-15, atol=0, equal_nan=True)
        assert np.array_equal(np.isnan(g), np.isnan(want))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 127, 128, 129, 400, 1000, 4097])
def test_sum_order_is_numpys(n):
    a = np.random.default_rng(n).standard_normal(n) * 1e3
    assert beat_kernels._np_sum(a, 0, n) == np.add.reduce(a)
    assert K is not None


@pytest.fixture(scope="module")
def dev_windows(data_dir):
    records, _ = load_dataset(data_dir)
    W = [alarm_window(r) for r in records]
    M = [r.mask for r in records]
    for r in records[::10]:  # and 1 s hops over a stretch of every tenth record
        for end in np.arange(40.0, 300.0, 13.0):
            W.append(window(r, float(end), 16.0))
            M.append(r.mask)
    return np.stack(W), np.stack(M)


def test_compiled_features_equal_the_reference_on_development_windows(dev_windows):
    W, M = dev_windows
    ref = extract_batch(W, M, engine="reference")
    got = extract_batch(W, M, engine="compiled")
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert np.array_equal(got[:, COUNTS], ref[:, COUNTS], equal_nan=True)  # the same beats in every row
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)
    assert np.nanmax(rel) <= 1e-12
    assert ((got == ref) | np.isnan(ref)).all(axis=1).mean() > 0.3  # most rows bit-identical


def test_engine_is_checked(monkeypatch, dev_windows):
    W, M = dev_windows
    with pytest.raises(InvalidFieldError) as e:
        extract_batch(W[:2], M[:2], engine="fast")
    assert "engine" in str(e.value) and "fast" in str(e.value)
    monkeypatch.setenv("HOLMES_FEATURES_ENGINE", "reference")
    assert np.array_equal(extract_batch(W[:4], M[:4]), extract_batch(W[:4], M[:4], engine="reference"), equal_nan=True)
    monkeypatch.setenv("HOLMES_FEATURES_ENGINE", "quick")
    with pytest.raises(InvalidFieldError):
        extract_batch(W[:2], M[:2])
