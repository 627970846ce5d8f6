"""The cheap rung: a handful of features of ONE ECG lead and a logistic model on them.

``lead_features(window, mask)`` reads only one ECG lead (ECG1, or ECG2 when ECG1 is absent or all NaN)
and computes 12 numbers, about an order of magnitude cheaper than ``models.features.extract`` (which
filters and beat-detects four signals and computes 99 features; measured in bench/cascade_costs.py):

    nan_frac, flat_frac                  signal quality
    n_beats, hr_bpm, min_hr5_bpm, max_hr5_bpm, max_hr17_bpm, max_gap_s (s), rr_cv   rhythm (QRS times)
    qrs_width_s                          median QRS width (wide complexes: ventricular beats)
    dom_freq_hz, spec_conc               dominant frequency of the last 8 s and its spectral concentration
                                         (ventricular flutter/fibrillation is a narrow 3-7 Hz peak)

``LeadModel`` implements ``models.member.Member`` (raw windows in, P(true alarm) out) with the alarm type
as one-hot input; ``fit`` takes precomputed rows so cross-validation extracts features once.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from models.beats import ecg_peaks, fill_nan, filtered, rhythm
from models.data import FS_HZ
from models.errors import InvalidFieldError
from models.features import alarm_onehot
from models.member import check_batch, check_output

LEAD_FEATURES: tuple[str, ...] = ("nan_frac", "flat_frac", "n_beats", "hr_bpm", "min_hr5_bpm", "max_hr5_bpm", "max_hr17_bpm",
                                  "max_gap_s", "rr_cv", "qrs_width_s", "dom_freq_hz", "spec_conc")
LAST_S = 8.0


def _quality(raw: np.ndarray, nan_frac: float, fs_hz: int) -> list[float]:
    """[NaN fraction, flat fraction (1 s blocks without variation)] of one raw lead."""
    x = raw[np.isfinite(raw)]
    if x.size < fs_hz:
        return [nan_frac, 1.0]
    nblk = raw.size // fs_hz
    blocks = raw[: nblk * fs_hz].reshape(nblk, fs_hz)
    with np.errstate(invalid="ignore"):
        rng = np.nanmax(blocks, axis=1) - np.nanmin(blocks, axis=1)
    return [nan_frac, float(np.mean(~(rng > 1e-6 * max(1.0, np.abs(x).max()))))]


def pick_lead(window: np.ndarray, mask) -> int | None:
    """Slot index of the lead the cheap rung reads: ECG1, else ECG2, else None (no ECG)."""
    for i in (0, 1):
        if bool(mask[i]) and np.isfinite(window[i]).any():
            return i
    return None


def lead_features(window: np.ndarray, mask, fs_hz: int = FS_HZ) -> np.ndarray:
    """float64 [12] features of one ECG lead of a raw window [5, n]; NaN row when no ECG lead is present."""
    i = pick_lead(window, mask)
    if i is None:
        return np.full(len(LEAD_FEATURES), np.nan)
    raw = np.asarray(window[i], dtype=np.float64)
    filled, nan_frac = fill_nan(raw[None])
    quality = _quality(raw, float(nan_frac[0]), fs_hz)
    bp = filtered(filled, "ecg", fs_hz)[0]
    t, widths = ecg_peaks(bp, fs_hz, widths=True)
    n, hr, slow5, fast17, fast5, gap, cv = rhythm(t, len(raw) / fs_hz)
    last = filled[0, -int(LAST_S * fs_hz):]
    last = last - last.mean()
    spec = np.abs(np.fft.rfft(last)) ** 2
    f = np.fft.rfftfreq(len(last), 1.0 / fs_hz)
    tot = spec[(f >= 0.5) & (f <= 40)].sum()
    band = (f >= 1.5) & (f <= 10)
    if tot > 0:
        dom = float(f[band][np.argmax(spec[band])])
        conc = float(spec[(f >= dom - 0.5) & (f <= dom + 0.5)].sum() / tot)
    else:
        dom, conc = 0.0, 0.0
    width = float(np.median(widths)) if len(widths) else np.nan
    return np.array([quality[0], quality[1], n, hr, slow5, fast5, fast17, gap, cv, width, dom, conc], dtype=np.float64)


def lead_features_batch(windows: np.ndarray, masks: np.ndarray, fs_hz: int = FS_HZ) -> np.ndarray:
    """[B, 5, n] -> [B, 12]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = [lead_features(w, m, fs_hz) for w, m in zip(windows, masks)]
    return np.stack(rows) if rows else np.empty((0, len(LEAD_FEATURES)))


def _pipeline(C: float, pos_weight: float):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler(),
                         LogisticRegression(C=C, class_weight={0: 1.0, 1: pos_weight}, max_iter=3000))


class LeadModel:
    """Logistic regression on ``lead_features`` plus the alarm type (a ``models.member.Member``)."""

    kind = "features"
    window_s = 16.0

    def __init__(self, name: str = "lead-logreg", C: float = 0.3, pos_weight: float = 3.0):
        self.name = name
        self.C = C
        self.pos_weight = pos_weight

    def fit(self, features: np.ndarray, alarm_types: Sequence[str], y) -> "LeadModel":
        y = np.asarray(y, dtype=int)
        if features.shape != (len(y), len(LEAD_FEATURES)):
            raise InvalidFieldError("features", f"must have shape ({len(y)}, {len(LEAD_FEATURES)})", features.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.estimator_ = _pipeline(self.C, self.pos_weight).fit(np.hstack([features, alarm_onehot(alarm_types)]), y)
        self.feature_names_ = LEAD_FEATURES
        return self

    def proba_from_features(self, features: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "estimator_"):
            raise RuntimeError(f"{self.name} is not fitted: call fit() first")
        if len(features) == 0:
            return np.zeros(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return self.estimator_.predict_proba(np.hstack([features, alarm_onehot(alarm_types)]))[:, 1]

    def predict_proba(self, windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        check_batch(windows, masks, alarm_types)
        return check_output(self.name, self.proba_from_features(lead_features_batch(windows, masks), alarm_types), len(windows))

    def __repr__(self) -> str:
        return f"LeadModel(name={self.name!r}, C={self.C})"
