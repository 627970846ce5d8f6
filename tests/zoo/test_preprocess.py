"""CNN preprocessing on real windows and on the defects real monitors produce (NaN runs, flat lines, lead-off)."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import InvalidFieldError
from models.preprocess import CLIP, SCALE_FLOOR, preprocess


class TestPreprocess:
    def test_shape_dtype_and_downsampling(self, batch):
        windows, masks, _ = batch
        x, amp, present = preprocess(windows, masks)
        assert x.shape == (len(windows), 5, 2000) and x.dtype == np.float32
        assert amp.shape == present.shape == (len(windows), 5)
        assert np.all(np.isfinite(x)) and np.abs(x).max() <= CLIP
        # 125 Hz = mean of sample pairs of the scaled signal
        ok = present[0].nonzero()[0][0]
        w = windows[:1, ok : ok + 1]
        x1, _, _ = preprocess(np.repeat(windows[:1], 1, 0), masks[:1])
        assert np.corrcoef(x1[0, ok], w[0, 0, 0::2])[0, 1] > 0.9

    def test_absent_or_all_nan_slot_is_zero(self, batch):
        windows, masks, _ = batch
        w = windows.copy()
        m = masks.copy()
        m[:, 4] = False
        w[:, 1] = np.nan  # lead-off for the whole window, mask still True
        x, amp, present = preprocess(w, m)
        assert not present[:, 1].any() and not present[:, 4].any()
        assert np.all(x[:, 1] == 0) and np.all(x[:, 4] == 0) and np.all(amp[:, [1, 4]] == 0)

    def test_nan_run_becomes_centre(self, batch):
        windows, masks, _ = batch
        w = windows.copy()
        w[:, 0, 2000:2500] = np.nan
        x, _, _ = preprocess(w, masks)
        assert np.all(np.isfinite(x))
        assert np.all(x[:, 0, 1000:1250][masks[:, 0]] == 0)

    def test_flat_line_stays_flat(self):
        w = np.zeros((1, 5, 4000), np.float32)
        w[0, 0] = 0.01 * np.random.default_rng(0).normal(size=4000)  # 10 uV noise on an asystole ECG
        w[0, 1] = np.sin(np.arange(4000) / 20.0)  # a 1 mV signal
        x, amp, _ = preprocess(w, np.ones((1, 5), bool))
        assert np.abs(x[0, 0]).max() < 0.2  # divided by the 0.2 mV floor, not blown up to full scale
        assert np.abs(x[0, 1]).max() > 0.4
        assert amp[0, 0] == 0.0 and amp[0, 1] == pytest.approx(np.log(2.0 / SCALE_FLOOR[1]), rel=0.05)

    def test_each_window_on_its_own(self, batch):
        windows, masks, _ = batch
        x_all, amp_all, _ = preprocess(windows, masks)
        x_one, amp_one, _ = preprocess(windows[3:4], masks[3:4])
        np.testing.assert_array_equal(x_all[3], x_one[0])
        np.testing.assert_array_equal(amp_all[3], amp_one[0])

    @pytest.mark.parametrize(
        "shape,fs,field",
        [((2, 4, 4000), 250, "windows"), ((2, 5, 3999), 250, "windows"), ((2, 5, 4000), 360, "fs_hz")],
    )
    def test_bad_input_is_named(self, shape, fs, field):
        with pytest.raises(InvalidFieldError, match=field):
            preprocess(np.zeros(shape, np.float32), np.ones((shape[0], shape[1]), bool), fs)
