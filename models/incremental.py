"""Incremental per-bed features: each sample is filtered and searched for beats once, as it arrives.

``models.features.extract_batch`` featurizes every 16 s window from scratch, although 15 of its 16 seconds
were seen one hop before: zero-phase filtering, peak search with window-wide thresholds and prominences,
and window percentiles all read every sample of every window. ``IncrementalFeatures`` keeps per-bed state
instead and computes the same 99 named features (``models.features.FEATURE_NAMES``) under *causal*
definitions, so that a window's features cost about what its newest second costs (the per-sample work is in
``models.incremental_kernels``):

- **filter**: the same Butterworth band-passes (ECG 5-20 Hz, pulse 0.5-8 Hz), run forward only with their
  state carried from sample to sample (started at steady state on a bed's first finite sample); NaN samples
  hold the last finite value (instead of interpolating across the gap, which needs the future).
- **ECG beats**: squared slope, trailing 120 ms moving integration; a candidate is a sample higher than the
  200 ms before it and not lower than the 200 ms after it, found once, 200 ms after it arrived. Its width is
  the time the integration stays above half its height (linear interpolation at the crossings). A window's
  beats are its candidates at least 20 % of the 99th percentile of the window's integration (exact, from
  each second's top values), as in ``models.beats``, and none where the median over its seconds of the
  band-passed range is under 0.05 mV (a flat line); candidates of the newest 200 ms are judged on the samples
  there are.
- **pulse beats**: a candidate is a sample of the band-passed pulse higher than the 250 ms before it and not
  lower than the 250 ms after it; its prominence is its height over the lowest sample of the second before it
  (the systolic upstroke). A window's beats are the candidates whose prominence reaches 30 % of the window's
  pulse amplitude (the median over its seconds of the band-passed range), and none where that amplitude is
  under the floor (5 mmHg ABP, 1e-3 PPG).
- **per-second summaries** kept for the window's 16 seconds: NaN count, min / max and how many samples sit
  on them (quality features, exact), mean and central power sums (kurtosis, merged over the seconds), the
  band-passed range (amplitudes), each second's top integration values (the 99th percentile), the finite sum
  (mean level), and for each ECG lead the 1-7 and 7-30 Hz power of the 4 s ending with the second (one
  1,000-point FFT per lead per second; the morphology change compares the last 4 s with the two 4 s segments
  that make up the window's first 8 s).
- per window: the rhythm statistics of the beats (``models.beat_kernels``, as in the batch features), the 8 s
  Hann spectrum of each ECG lead (one 2,000-point FFT per lead: the one part still O(window); a Welch average of
  2 s spectra made once per second scored 2.2 points lower under nested CV, bench/incremental_features.py), the
  consensus and lead agreement (``models.features._consensus``).

Beat-based, spectral and amplitude features change definition (pulse amplitude and ECG amplitude ratio from
per-second ranges, mean level a mean instead of a median); quality features and kurtosis keep theirs. A model
must be fitted on these features, not on the batch ones:
``bench/incremental_features.py`` compares both under the same nested folds, and times both.

Windows end on whole seconds of a bed's stream (sample counts that are multiples of ``fs_hz``), the hop of
the service. ``push`` takes chunks of any length (all beds of one call at the same phase of their second);
the result does not depend on how a stream was cut into chunks (tests/foundation/test_incremental.py).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .beats import ECG_FLAT_MV, _sos
from .data import FS_HZ
from .errors import InvalidFieldError
from .features import CONSENSUS, LAST_S, N_FEATURES, OFFSET, RHYTHM, _consensus, _ratio, _spectral_plan
from .incremental_kernels import kernels

ECG_D_S = 0.2  # a QRS candidate is the highest sample within this on both sides (the batch peak distance)
PULSE_D_S = 0.25
PULSE_PROM_S = 1.0  # the upstroke is measured from the lowest sample of this long before the peak
INTEG_S = 0.12
ECG_HEIGHT = 0.2  # of the window's 99th percentile of the integration
PULSE_PROM = 0.3  # of the window's pulse amplitude
FLOORS = (5.0, 1e-3)  # ABP mmHg, PPG: a pulse amplitude under this has no beats
HIST = 512  # samples of the detection signal kept per row (>= 1 s + the decision delay; a power of two)
CAP = 256  # beat candidates kept per row (>= the most a window can hold: 16 s / 0.2 s; a power of two)

class _Group:
    """State of one kind of row (two ECG leads or two pulses per bed)."""

    def __init__(self, rows: int, kind: str, fs: int, nb: int):
        from scipy import signal

        self.ecg = kind == "ecg"
        self.fs, self.nb = fs, nb
        self.sos = np.ascontiguousarray(_sos("ecg" if self.ecg else "pulse", fs))
        self.zi_unit = signal.sosfilt_zi(self.sos)
        self.D = int(round((ECG_D_S if self.ecg else PULSE_D_S) * fs))
        self.L = max(1, int(INTEG_S * fs))
        self.prom_len = 0 if self.ecg else int(PULSE_PROM_S * fs)
        N = nb * fs
        self.k_top = N - int(math.floor(0.99 * (N - 1))) if self.ecg else 1  # per second: holds the window's 99th percentile
        S = len(self.sos)
        e = rows if self.ecg else 1  # ECG-only buffers
        self.n = np.zeros(rows, dtype=np.int64)
        self.z = np.zeros((rows, S, 2))
        self.last = np.zeros(rows)
        self.have = np.zeros(rows, dtype=np.bool_)
        self.prev = np.zeros(rows)
        self.box = np.zeros((rows, self.L + 1))  # squared slopes, then their running sum
        self.hist = np.zeros((rows, HIST))
        self.acc = np.zeros((rows, 8))
        self.blk_sig = np.zeros((e, fs))
        self.bt = np.zeros((rows, CAP), dtype=np.int64)
        self.bh = np.zeros((rows, CAP))
        self.bw = np.zeros((rows, CAP))
        self.bn = np.zeros(rows, dtype=np.int64)
        # per-second rings
        self.q = np.full((rows, nb, 5), np.nan)  # NaN count, min, max, samples at min, samples at max
        self.rng = np.full((rows, nb), np.nan)  # band-passed range
        self.mom = np.zeros((rows, nb, 4))  # ECG: mean and central power sums 2-4 of the filled signal; pulse: finite sum
        self.top = np.zeros((e, nb, self.k_top))  # ECG: the second's largest integration values
        self.filled = np.zeros((e, nb, fs))  # ECG: the filled signal (spectra)
        self.plan4, self.plan8 = _spectral_plan(4 * fs, fs), _spectral_plan(int(LAST_S) * fs, fs)
        self.lh = np.zeros((e, nb, 2))  # ECG: 1-7 and 7-30 Hz power of the 4 s ending with the second

    def reset(self, rows: np.ndarray) -> None:
        for name in ("n", "z", "last", "prev", "box", "hist", "bn", "mom"):
            getattr(self, name)[rows] = 0
        self.have[rows] = False
        self.q[rows] = np.nan
        self.rng[rows] = np.nan

    def grow(self, rows: int) -> None:
        """Room for ``rows`` rows: the state of the rows there are is kept, the new ones start empty."""
        old = len(self.n)
        fresh = _Group(rows - old, "ecg" if self.ecg else "pulse", self.fs, self.nb)
        for name, value in list(vars(self).items()):
            if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == old and name not in ("sos", "zi_unit"):
                setattr(self, name, np.concatenate([value, getattr(fresh, name)]))

    def advance(self, rows: np.ndarray, x: np.ndarray) -> None:
        kernels()["advance"](x, rows, self.n, self.z, self.sos, self.zi_unit, self.last, self.have, self.prev, self.box,
                             self.hist, self.acc, self.blk_sig, self.filled, self.q, self.rng, self.mom, self.top,
                             self.bt, self.bh, self.bw, self.bn, self.fs, self.ecg, self.D, self.L, self.prom_len)

    def seconds_closed(self, rows: np.ndarray) -> None:
        """ECG: 1-7 and 7-30 Hz power of the 4 s ending with the second rows ``rows`` just completed (the kernel did
        the rest); the morphology change compares these for the window's last 4 s and its first 8 s."""
        if not self.ecg:
            return
        seg = self.recent(rows, 4)
        spec = np.fft.rfft(seg - seg.mean(-1, keepdims=True), axis=-1)[:, : self.plan4["tot"].stop]
        spec = spec.real**2 + spec.imag**2
        slot = (self.n[rows] // self.fs - 1) % self.nb
        self.lh[rows, slot, 0] = spec[:, self.plan4["low"]].sum(-1)
        self.lh[rows, slot, 1] = spec[:, self.plan4["high"]].sum(-1)

    def recent(self, rows: np.ndarray, seconds: int) -> np.ndarray:
        """[k, seconds * fs] filled ECG of the newest ``seconds`` whole seconds (zeros before a row's first)."""
        cur = self.n[rows] // self.fs - 1
        slots = (cur[:, None] - np.arange(seconds - 1, -1, -1)[None]) % self.nb
        return self.filled[rows[:, None], slots].reshape(len(rows), -1)

    def ordered(self, ring: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``ring[rows]`` with its seconds oldest first (the window's 16 seconds)."""
        cur = self.n[rows] // self.fs - 1
        slots = (cur[:, None] - np.arange(self.nb - 1, -1, -1)[None]) % self.nb
        return ring[rows[:, None], slots]


class IncrementalFeatures:
    """Per-bed incremental features of the window ending at each bed's latest whole second.

    >>> inc = IncrementalFeatures(n_beds=3)
    >>> inc.push(chunk)                   # chunk [3, >=4, m]: slots ECG1, ECG2, ABP, PPG (RESP ignored); NaN allowed
    >>> X = inc.features(masks)          # [3, N_FEATURES] for beds whose stream is at a whole second
    >>> inc.push(part, beds=[2])         # only bed 2 moves on
    >>> inc.reset([1])                   # bed 1's stream broke: its state starts again
    """

    def __init__(self, n_beds: int, fs_hz: int = FS_HZ, window_s: float = 16.0):
        if n_beds < 1:
            raise InvalidFieldError("n_beds", "must be >= 1", n_beds)
        if window_s != int(window_s) or window_s < 2 * LAST_S:
            raise InvalidFieldError("window_s", f"must be a whole number of seconds >= {2 * LAST_S:g}", window_s)
        self.B, self.fs, self.nb = int(n_beds), int(fs_hz), int(window_s)
        self.N = self.nb * self.fs
        self.ecg = _Group(2 * self.B, "ecg", self.fs, self.nb)
        self.pulse = _Group(2 * self.B, "pulse", self.fs, self.nb)
        kernels()

    def grow(self, n_beds: int) -> None:
        """Room for ``n_beds`` beds (more than now): the beds there are keep their state."""
        if n_beds <= self.B:
            raise InvalidFieldError("n_beds", f"must be more than the {self.B} beds there are", n_beds)
        self.ecg.grow(2 * n_beds)
        self.pulse.grow(2 * n_beds)
        self.B = int(n_beds)

    def _beds(self, beds) -> np.ndarray:
        if beds is None:
            return np.arange(self.B)
        beds = np.asarray(beds, dtype=np.int64).reshape(-1)
        if len(beds) and (beds.min() < 0 or beds.max() >= self.B):
            raise InvalidFieldError("beds", f"must be indices in [0, {self.B})", beds.tolist())
        if len(np.unique(beds)) != len(beds):
            raise InvalidFieldError("beds", "must not repeat a bed", beds.tolist())
        return beds

    @staticmethod
    def _rows(beds: np.ndarray) -> np.ndarray:
        return (2 * beds[:, None] + np.arange(2)[None]).reshape(-1)

    def samples(self, beds=None) -> np.ndarray:
        """Samples each bed has been fed since its last reset."""
        return self.ecg.n[2 * self._beds(beds)].copy()

    def reset(self, beds=None) -> None:
        """Forget the state of ``beds`` (all by default): after a gap, out-of-order or duplicate data."""
        rows = self._rows(self._beds(beds))
        self.ecg.reset(rows)
        self.pulse.reset(rows)

    def push(self, chunk: np.ndarray, beds=None) -> None:
        """Feed ``chunk`` [k, >=4, m] (float, NaN allowed) to ``beds`` (k of them; default all), all at the same
        phase of their current second."""
        beds = self._beds(beds)
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 3 or x.shape[0] != len(beds) or x.shape[1] < 4:
            raise InvalidFieldError("chunk", f"must be [beds={len(beds)}, >=4 signals, samples]", getattr(x, "shape", None))
        if not len(beds) or not x.shape[2]:
            return
        rows = self._rows(beds)
        phase = self.ecg.n[rows] % self.fs
        if (phase != phase[0]).any():
            raise InvalidFieldError("beds", "must be at the same phase of their second in one push", sorted(set(phase.tolist())))
        ecg = np.ascontiguousarray(x[:, :2].reshape(-1, x.shape[2]))
        pulse = np.ascontiguousarray(x[:, 2:4].reshape(-1, x.shape[2]))
        j, m, p = 0, x.shape[2], int(phase[0])
        while j < m:
            step = min(m - j, self.fs - p)
            for g, part in ((self.ecg, ecg), (self.pulse, pulse)):
                g.advance(rows, np.ascontiguousarray(part[:, j : j + step]))
            j, p = j + step, (p + step) % self.fs
            if p == 0:
                self.ecg.seconds_closed(rows)

    def features(self, masks=None, beds=None) -> np.ndarray:
        """[k, N_FEATURES] of the windows ending now for ``beds`` (default all); ``masks`` [k, >=4] says which
        signals each bed has (default: all). A bed not at a whole second, or with under a window of samples
        since its reset, gets a row of NaN."""
        beds = self._beds(beds)
        k = len(beds)
        masks = np.ones((k, 4), dtype=bool) if masks is None else np.asarray(masks, dtype=bool)[:, :4]
        if masks.shape != (k, 4):
            raise InvalidFieldError("masks", f"must be [beds={k}, >=4]", masks.shape)
        out = np.full((k, N_FEATURES), np.nan)
        n = self.ecg.n[2 * beds]
        ready = (n % self.fs == 0) & (n >= self.N)
        if not ready.any():
            return out
        idx = np.flatnonzero(ready)
        out[idx] = self._features(beds[idx], masks[idx])
        return out

    def _features(self, beds: np.ndarray, masks: np.ndarray) -> np.ndarray:
        k, fs, N = len(beds), self.fs, self.N
        span = N / fs
        K = _beat_kernels()
        out = np.full((k, N_FEATURES), np.nan)
        rows = self._rows(beds)
        quality = np.concatenate([self._quality(self.ecg, rows).reshape(k, 2, 3), self._quality(self.pulse, rows).reshape(k, 2, 3)], 1)
        present = masks & (quality[..., 0] < 1.0)
        whole = np.full((k, 4, len(RHYTHM)), np.nan)

        g = self.ecg
        rng = g.ordered(g.rng, rows)
        thr = ECG_HEIGHT * self._p99(g, rows)
        thr[~(np.median(rng, -1) >= ECG_FLAT_MV)] = np.nan
        t, w, counts = _window(g, rows, N, thr)
        rh = K["rhythm_rows"](t, counts, span, LAST_S)
        widths = K["widths_rows"](t, w, counts, span, LAST_S)
        last8 = g.recent(rows, int(LAST_S))
        last8 = (last8 - last8.mean(-1, keepdims=True)) * g.plan8["hann"]
        spec = np.fft.rfft(last8, axis=-1)[:, : g.plan8["tot"].stop]
        spectral = np.concatenate([_kurtosis(g.ordered(g.mom, rows), fs)[:, None], _spectrum_rows(spec.real**2 + spec.imag**2, g.plan8)], 1)
        lh = g.ordered(g.lh, rows)
        first = lh[:, -13] + lh[:, -9]  # the 4 s segments ending 12 and 8 s before the window's last second: its first 8 s
        change = _log_ratio(lh[:, -1, 0], lh[:, -1, 1]) - _log_ratio(first[:, 0], first[:, 1])
        amp = _ratio(np.median(rng[:, -4:], -1), np.median(rng[:, : int(LAST_S)], -1), np.nan)
        block = np.concatenate([quality[:, :2].reshape(-1, 3), rh, spectral, widths, np.stack([change, amp], -1)], 1)
        _place(out, whole, present, block, rh, 0)
        both = np.flatnonzero(present[:, 0] & present[:, 1])
        if len(both):
            cut = np.concatenate([[0], np.cumsum(counts)])
            col = OFFSET[-1] + CONSENSUS.index("ecg_agreement")
            for b in both:
                r0, r1 = 2 * b, 2 * b + 1
                out[b, col] = K["match_fraction"](t[cut[r0] : cut[r0 + 1]], t[cut[r1] : cut[r1 + 1]], 0.15)

        g = self.pulse
        rng = g.ordered(g.rng, rows)
        amp_ref = np.median(rng, -1)
        floors = np.tile(np.array(FLOORS), k)
        thr = np.maximum(PULSE_PROM * amp_ref, floors)
        thr[~(amp_ref >= floors)] = np.nan
        t, _, counts = _window(g, rows, N, thr)
        rh = K["rhythm_rows"](t, counts, span, LAST_S)
        n4 = 4
        amp = np.median(rng[:, :-n4], -1)
        drop = _ratio(np.median(rng[:, -n4:], -1), amp, 0.0)
        q = g.ordered(g.q, rows)
        finite = N - q[..., 0].sum(-1)
        level = g.ordered(g.mom, rows)[..., 0].sum(-1) / np.maximum(finite, 1)
        block = np.concatenate([quality[:, 2:].reshape(-1, 3), rh, np.stack([amp, drop, level], -1)], 1)
        _place(out, whole, present, block, rh, 2)
        agree = out[:, OFFSET[-1] + CONSENSUS.index("ecg_agreement")].copy()
        out[:, OFFSET[-1] :] = _consensus(present, quality, whole)
        out[:, OFFSET[-1] + CONSENSUS.index("ecg_agreement")] = agree
        return out

    def _quality(self, g: _Group, rows: np.ndarray) -> np.ndarray:
        """[rows, 3]: NaN fraction, flat fraction, saturation fraction over the window (as ``models.features``)."""
        q = g.ordered(g.q, rows)
        fs, N = self.fs, self.N
        nnan = q[..., 0].sum(-1)
        count = N - nnan
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: NaN min / max
            lo, hi = np.nanmin(q[..., 1], -1), np.nanmax(q[..., 2], -1)
            absmax = np.maximum(np.abs(lo), np.abs(hi))
            thr = 1e-6 * np.maximum(1.0, absmax)
            flat = np.mean(~((q[..., 2] - q[..., 1]) > thr[:, None]), -1)
            sat_n = np.where(q[..., 1] == lo[:, None], q[..., 3], 0).sum(-1) + np.where(q[..., 2] == hi[:, None], q[..., 4], 0).sum(-1)
        sat = np.where(hi > lo, sat_n / np.maximum(count, 1), 1.0)
        few = count < fs
        return np.stack([nnan / N, np.where(few, 1.0, flat), np.where(few, 0.0, sat)], -1)

    def _p99(self, g: _Group, rows: np.ndarray) -> np.ndarray:
        """The 99th percentile (numpy's linear rule) of each row's integration over the window, from each second's top values."""
        top = g.ordered(g.top, rows).reshape(len(rows), -1)
        kt = g.k_top
        v = np.sort(np.partition(top, top.shape[1] - kt, axis=-1)[:, -kt:], axis=-1)
        pos = 0.99 * (self.N - 1)
        frac = pos - math.floor(pos)
        return v[:, 0] + frac * (v[:, 1] - v[:, 0])


def _place(out: np.ndarray, whole: np.ndarray, present: np.ndarray, block: np.ndarray, rh: np.ndarray, first: int) -> None:
    """Write the feature blocks [2k, width] of sources ``first`` and ``first + 1`` (rows bed by bed) into their columns
    of ``out``, and their whole-window rhythm into ``whole`` (for the consensus), where the source is present."""
    k = len(out)
    block, rh = block.reshape(k, 2, -1), rh.reshape(k, 2, -1)
    for s in range(2):
        keep = present[:, first + s]
        out[keep, OFFSET[first + s] : OFFSET[first + s] + block.shape[2]] = block[keep, s]
        whole[keep, first + s] = rh[keep, s, : len(RHYTHM)]


def _window(g: _Group, rows: np.ndarray, N: int, thr: np.ndarray):
    """(beat times, widths, counts) of rows ``rows``' windows of N samples ending now, at thresholds ``thr``."""
    return kernels()["window_beats"](rows, g.n, N, g.hist, g.bt, g.bh, g.bw, g.bn, np.ascontiguousarray(thr, dtype=np.float64),
                                     g.fs, g.ecg, g.D, g.prom_len)


def _kurtosis(mom: np.ndarray, fs: int) -> np.ndarray:
    """Kurtosis of each row's window from its seconds' means and central power sums [k, seconds, 4] (merged
    around the window mean, which stays accurate whatever the signal's offset); 0 for a constant window."""
    mean = mom[..., 0].mean(-1, keepdims=True)
    d = mom[..., 0] - mean
    d2 = d * d
    m2 = (mom[..., 1] + fs * d2).sum(-1)
    m4 = (mom[..., 3] + 4 * d * mom[..., 2] + 6 * d2 * mom[..., 1] + fs * d2 * d2).sum(-1)
    n = mom.shape[1] * fs
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m2 > 0, (m4 / n) / np.where(m2 > 0, m2 / n, 1.0) ** 2, 0.0)


def _log_ratio(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.log10((low + 1e-12) / (high + 1e-12))


def _spectrum_rows(spec: np.ndarray, plan: dict) -> np.ndarray:
    """[k, 4] from power spectra [k, bins to 40 Hz]: QRS-band (5-15 Hz) power ratio, dominant frequency
    (1.5-10 Hz), its concentration (+-0.5 Hz) and log10 of 1-7 over 7-30 Hz power, ratios over 0.5-40 Hz (the
    definitions of ``models.features``, computed on the bins up to 40 Hz only)."""
    f = plan["f"]
    tot = spec[:, plan["tot"]].sum(-1)
    ok = tot > 0
    safe = np.where(ok, tot, 1.0)
    dom_i = plan["dom"].start + np.argmax(spec[:, plan["dom"]], axis=-1)
    half = int(math.floor(0.5 / (f[1] - f[0]) + 1e-9))
    cs = np.concatenate([np.zeros((len(spec), 1)), np.cumsum(spec, -1)], -1)
    rows = np.arange(len(spec))
    conc = (cs[rows, np.minimum(dom_i + half + 1, spec.shape[1])] - cs[rows, dom_i - half]) / safe
    z = np.zeros(len(spec))
    return np.stack([np.where(ok, spec[:, plan["qrs"]].sum(-1) / safe, z), np.where(ok, f[dom_i], z), np.where(ok, conc, z),
                     np.where(ok, _log_ratio(spec[:, plan["low"]].sum(-1), spec[:, plan["high"]].sum(-1)), z)], -1)


def _beat_kernels() -> dict:
    from .beat_kernels import kernels as bk

    K = bk()
    if K is None:  # pragma: no cover
        raise InvalidFieldError("engine", "incremental features need numba (pip install numba)", "incremental")
    return K

