"""The cheap rung: a few rhythm features of ONE ECG lead and ONE pulse signal, computed at a low sample rate,
and a small forest on them.

``quick_features_batch(windows, masks)`` reads ECG1 (ECG2 when ECG1 is absent or all NaN) decimated to
62.5 Hz, and ABP (PPG when ABP is absent or mostly NaN) decimated to 50 Hz, and computes 20 numbers per
window, vectorised over the batch except the peak search. It is about 6.5x cheaper per window than
``models.features.extract_batch`` (which filters and beat-detects four signals at 250 Hz for 99 features;
measured by bench/cascade_costs.py):

    ECG lead   nan_frac, flat_frac                       signal quality
               n_beats, hr_bpm, min_hr5_bpm, max_hr5_bpm, max_hr17_bpm, max_gap_s, rr_cv   rhythm (QRS times)
               qrs_width_s                               median QRS width (wide complexes: ventricular beats)
               dom_freq_hz, spec_conc                    dominant frequency of the last 8 s and its spectral
                                                         concentration (VF/flutter is a narrow 3-7 Hz peak)
    pulse      pulse_hr_bpm, pulse_min_hr5_bpm, pulse_max_hr5_bpm, pulse_max_gap_s, pulse_amp, pulse_n_beats
    both       ecg_minus_pulse_bpm, pulse_source         (0 none, 1 ABP, 2 PPG)

Why a pulse: most false alarms are ECG artefacts while the heart keeps beating, which the pulse shows; a
single ECG lead cannot tell. Under the registry's CV folds a logistic model on 12 features of the ECG lead
alone scored 69.2; this forest with the pulse scores 76.3 +- 1.1 over 5 seeds (AUROC 0.94), close to the
full 28-member ensemble (76.2) at ~1/30 of its compute (bench/cascade_seeds.py).

``LeadModel`` implements ``models.member.Member`` (raw windows in, P(true alarm) out) with the alarm type
as one-hot input; ``fit`` takes precomputed rows so cross-validation extracts features once.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from models.beats import ecg_peaks_rows, fill_nan, filtered, median_small, percentiles_rows, pulse_peaks_rows, rhythm
from models.data import FS_HZ, N_SLOTS
from models.errors import InvalidFieldError
from models.features import alarm_onehot
from models.member import check_batch, check_output

ECG_FEATURES = ("nan_frac", "flat_frac", "n_beats", "hr_bpm", "min_hr5_bpm", "max_hr5_bpm", "max_hr17_bpm", "max_gap_s", "rr_cv",
                "qrs_width_s", "dom_freq_hz", "spec_conc")
PULSE_FEATURES = ("pulse_hr_bpm", "pulse_min_hr5_bpm", "pulse_max_hr5_bpm", "pulse_max_gap_s", "pulse_amp", "pulse_n_beats")
LEAD_FEATURES: tuple[str, ...] = ECG_FEATURES + PULSE_FEATURES + ("ecg_minus_pulse_bpm", "pulse_source")
ECG_DECIMATE = 4  # 250 -> 62.5 Hz: the 5-20 Hz QRS band stays below Nyquist
PULSE_DECIMATE = 5  # 250 -> 50 Hz: the pulse band is 0.5-8 Hz
QUICK_S = 8.0  # seconds at the end of the window that the quick features read (as accurate as 16 s, half the cost)
ABP_FLOOR_MMHG = 5.0  # a pulse range below this has no beats (as in models.features)
PPG_FLOOR = 1e-3


def _decimate(x: np.ndarray, k: int) -> np.ndarray:
    """Mean of each k samples, aligned to the END of the window (the newest samples are kept)."""
    n = (x.shape[-1] // k) * k
    return x[:, x.shape[-1] - n :].reshape(len(x), -1, k).mean(-1)


def _ecg_rows(raw: np.ndarray, fs_hz: int) -> np.ndarray:
    """[R, 12] ECG features of raw lead rows [R, n] (NaN allowed)."""
    R, n = raw.shape
    filled, nan_frac = fill_nan(raw)
    nblk = n // fs_hz
    blocks = filled[:, : nblk * fs_hz].reshape(R, nblk, fs_hz)
    rng = blocks.max(-1) - blocks.min(-1)
    thr = 1e-6 * np.maximum(1.0, np.abs(filled).max(-1))
    flat = np.mean(~(rng > thr[:, None]), -1) if nblk else np.ones(R)
    flat = np.where(nan_frac > 1.0 - 1.0 / max(nblk, 1), 1.0, flat)
    fs = fs_hz / ECG_DECIMATE
    x = _decimate(filled, ECG_DECIMATE)
    bp = filtered(x, "ecg", fs)
    beats = ecg_peaks_rows(bp, fs)  # QRS times and widths, as models.features finds them at 250 Hz
    spec = np.abs(np.fft.rfft(x - x.mean(-1, keepdims=True), axis=-1)) ** 2  # x is the last QUICK_S seconds
    f = np.fft.rfftfreq(x.shape[-1], 1.0 / fs)
    tot = spec[:, (f >= 0.5) & (f <= 40)].sum(-1)
    band = np.flatnonzero((f >= 1.5) & (f <= 10))
    dom = f[band][np.argmax(spec[:, band], axis=-1)]
    near = (f[None] >= dom[:, None] - 0.5) & (f[None] <= dom[:, None] + 0.5)
    ok = tot > 0
    conc = np.where(ok, (spec * near).sum(-1) / np.where(ok, tot, 1.0), 0.0)
    dom = np.where(ok, dom, 0.0)
    span = n / fs_hz
    out = np.empty((R, len(ECG_FEATURES)))
    for j, (t, w) in enumerate(beats):
        n_b, hr, slow5, fast17, fast5, gap, cv = rhythm(t, span)
        out[j] = (nan_frac[j], flat[j], n_b, hr, slow5, fast5, fast17, gap, cv, median_small(w.tolist()) if len(w) else np.nan, dom[j], conc[j])
    return out


def _pulse_rows(raw: np.ndarray, is_abp: np.ndarray, fs_hz: int) -> np.ndarray:
    """[R, 6] pulse features of raw ABP/PPG rows [R, n]."""
    R, n = raw.shape
    filled, _ = fill_nan(raw)
    fs = fs_hz / PULSE_DECIMATE
    bp = filtered(_decimate(filled, PULSE_DECIMATE), "pulse", fs)
    lohi = percentiles_rows(bp, [2, 98])
    span = n / fs_hz
    amp = lohi[:, 1] - lohi[:, 0]
    times = pulse_peaks_rows(bp, fs, np.where(is_abp, ABP_FLOOR_MMHG, PPG_FLOOR))
    out = np.empty((R, len(PULSE_FEATURES)))
    for j in range(R):
        n_b, hr, slow5, _, fast5, gap, _ = rhythm(times[j], span)
        out[j] = (hr, slow5, fast5, gap, amp[j] if is_abp[j] else np.log(amp[j] + 1e-6), n_b)
    return out


def quick_features_batch(windows: np.ndarray, masks: np.ndarray, fs_hz: int = FS_HZ) -> np.ndarray:
    """Raw windows [B, 5, n] (NaN allowed) -> float64 [B, 20] (``LEAD_FEATURES``); NaN where a signal is absent.

    Only the last ``QUICK_S`` seconds of each window are read."""
    w = np.asarray(windows)
    m = np.asarray(masks, dtype=bool)
    if w.ndim != 3 or w.shape[1] != N_SLOTS:
        raise InvalidFieldError("windows", f"must have shape [batch, {N_SLOTS}, samples]", w.shape)
    if w.shape[2] < 8 * fs_hz:
        raise InvalidFieldError("windows", f"must hold at least {8 * fs_hz} samples (8 s) for the quick features", w.shape[2])
    w = w[:, :, -int(QUICK_S * fs_hz) :]
    B = len(w)
    out = np.full((B, len(LEAD_FEATURES)), np.nan)
    if B == 0:
        return out
    finite_frac = np.isfinite(w[:, :4]).mean(-1)  # [B, 4]
    ecg_ok = m[:, :2] & (finite_frac[:, :2] > 0)
    ecg_slot = np.where(ecg_ok[:, 0], 0, 1)
    pulse_ok = m[:, 2:4] & (finite_frac[:, 2:4] > 0.5)
    pulse_slot = np.where(pulse_ok[:, 0], 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = np.flatnonzero(ecg_ok.any(1))
        if len(rows):
            out[rows, : len(ECG_FEATURES)] = _ecg_rows(w[rows, ecg_slot[rows]].astype(np.float64), fs_hz)
        prow = np.flatnonzero(pulse_ok.any(1))
        p0 = len(ECG_FEATURES)
        if len(prow):
            is_abp = pulse_slot[prow] == 2
            out[prow, p0 : p0 + len(PULSE_FEATURES)] = _pulse_rows(w[prow, pulse_slot[prow]].astype(np.float64), is_abp, fs_hz)
    out[:, -2] = out[:, ECG_FEATURES.index("hr_bpm")] - out[:, p0]
    out[:, -1] = np.where(pulse_ok.any(1), np.where(pulse_slot == 2, 1.0, 2.0), 0.0)
    return out


def quick_features(window: np.ndarray, mask, fs_hz: int = FS_HZ) -> np.ndarray:
    """float64 [20] features of one raw window [5, n]: a batch of one."""
    return quick_features_batch(np.asarray(window)[None], np.asarray(mask)[None], fs_hz)[0]


ESTIMATORS = ("trees", "logreg")


def _pipeline(estimator: str, pos_weight: float, seed: int):
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cw = {0: 1.0, 1: pos_weight}
    impute = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    if estimator == "trees":
        return make_pipeline(impute, ExtraTreesClassifier(n_estimators=150, min_samples_leaf=3, class_weight=cw, random_state=seed, n_jobs=1))
    if estimator == "logreg":
        return make_pipeline(impute, StandardScaler(), LogisticRegression(C=0.3, class_weight=cw, max_iter=3000))
    raise InvalidFieldError("estimator", "must be a known quick-rung estimator", estimator, ESTIMATORS)


class LeadModel:
    """A small forest (or a logistic model) on ``quick_features`` plus the alarm type (a ``models.member.Member``)."""

    kind = "features"
    window_s = 16.0

    def __init__(self, name: str = "quick-trees", estimator: str = "trees", pos_weight: float = 3.0, seed: int = 0):
        if estimator not in ESTIMATORS:
            raise InvalidFieldError("estimator", "must be a known quick-rung estimator", estimator, ESTIMATORS)
        self.name = name
        self.estimator = estimator
        self.pos_weight = pos_weight
        self.seed = seed

    def fit(self, features: np.ndarray, alarm_types: Sequence[str], y) -> "LeadModel":
        y = np.asarray(y, dtype=int)
        if features.shape != (len(y), len(LEAD_FEATURES)):
            raise InvalidFieldError("features", f"must have shape ({len(y)}, {len(LEAD_FEATURES)})", features.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.estimator_ = _pipeline(self.estimator, self.pos_weight, self.seed).fit(np.hstack([features, alarm_onehot(alarm_types)]), y)
        self.feature_names_ = LEAD_FEATURES
        return self

    def proba_from_features(self, features: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        from models.fast_predict import fast_proba

        if not hasattr(self, "estimator_"):
            raise RuntimeError(f"{self.name} is not fitted: call fit() first")
        if getattr(self, "feature_names_", None) != LEAD_FEATURES:
            raise InvalidFieldError("feature_names_", f"of {self.name} must match this version's {len(LEAD_FEATURES)} quick features "
                                    "(refit the cascade)", len(getattr(self, "feature_names_", ()) or ()))
        if len(features) == 0:
            return np.zeros(0)
        with warnings.catch_warnings():  # the same values without scikit-learn's per-call checks (models.fast_predict)
            warnings.simplefilter("ignore", RuntimeWarning)
            return fast_proba(self.estimator_, np.hstack([features, alarm_onehot(alarm_types)]))[:, 1]

    def predict_proba(self, windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        check_batch(windows, masks, alarm_types)
        return check_output(self.name, self.proba_from_features(quick_features_batch(windows, masks), alarm_types), len(windows))

    def __repr__(self) -> str:
        return f"LeadModel(name={self.name!r}, estimator={self.estimator!r})"
