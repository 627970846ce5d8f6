"""Calibrated probabilities: Platt, temperature and isotonic maps fitted on out-of-fold predictions, chosen by CV.

A model's P(true alarm) is calibrated when, of the windows it gives 0.8, about 80 % are true alarms. The
expected calibration error (ECE) measures the gap: windows in 10 equal-width probability bins, the mean
|observed fraction - mean probability| weighted by the bin's share of windows.

Every map here is strictly increasing, so a calibrated model ranks windows exactly as before (AUROC does not
move): Platt is a logistic map of the logit, temperature a logistic map of the logit without an offset, and
isotonic (a step function) is mixed with ``ISO_MIX`` of the identity to break its ties.

>>> import numpy as np
>>> rng = np.random.default_rng(0); y = rng.integers(0, 2, 400)
>>> p = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.2, 400), 0.01, 0.99) ** 2  # squashed: miscalibrated
>>> c = Calibrator.fit("platt", p, y)
>>> bool(ece(y, c.transform(p)) < ece(y, p))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import InvalidFieldError

METHODS = ("none", "platt", "temperature", "isotonic")
EPS = 1e-6
ISO_MIX = 1e-3  # weight of the identity in the isotonic map: strictly increasing, so no new ties


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def ece(y, p, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width bins of [0, 1].

    >>> ece([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0])
    0.0
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    gap = np.abs(np.bincount(idx, weights=y, minlength=bins) - np.bincount(idx, weights=p, minlength=bins))
    return float(gap.sum() / len(y))  # sum over bins of n_b/N * |mean y_b - mean p_b|


def reliability(y, p, bins: int = 10) -> dict:
    """Per bin: {"lo", "hi", "n", "mean_p", "frac_true"} (NaN for empty bins), for a reliability diagram."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=bins) / n
        frac = np.bincount(idx, weights=y, minlength=bins) / n
    edges = np.linspace(0, 1, bins + 1)
    return {"lo": edges[:-1].tolist(), "hi": edges[1:].tolist(), "n": n.tolist(), "mean_p": mean_p.tolist(), "frac_true": frac.tolist()}


def log_loss(y, p) -> float:
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _fit_logistic(z: np.ndarray, y: np.ndarray, offset: bool, iters: int = 50) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a z + b) by Newton steps (b = 0 without ``offset``), with
    Platt's smoothed targets so a separable fold does not send the slope to infinity."""
    n1, n0 = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    a, b = 1.0, 0.0
    X = np.stack([z, np.ones_like(z)], axis=1) if offset else z[:, None]
    w = np.array([a, b]) if offset else np.array([a])
    for _ in range(iters):
        q = _sigmoid(X @ w)
        g = X.T @ (q - t)
        H = (X * (q * (1 - q))[:, None]).T @ X + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(H, g)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1]) if offset else 0.0


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from a model's probability to a calibrated one; JSON-friendly (``to_dict``/``from_dict``).

    method  "none" | "platt" | "temperature" | "isotonic"
    a, b    logit slope and offset (platt; temperature has b = 0 and a = 1/T)
    x, yk   isotonic knots (increasing x, non-decreasing yk), linear between knots, clipped outside
    """

    method: str = "none"
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = field(default=())
    yk: tuple[float, ...] = field(default=())

    @classmethod
    def fit(cls, method: str, p, y) -> "Calibrator":
        if method not in METHODS:
            raise InvalidFieldError("calibration", "must be one of the calibration methods", method, METHODS)
        p = np.asarray(p, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if method == "none" or len(np.unique(y)) < 2:
            return cls("none")
        if method in ("platt", "temperature"):
            a, b = _fit_logistic(_logit(p), y, offset=method == "platt")
            if not a > 0:  # a map that reverses the ranking is no calibration of this model
                return cls("none")
            return cls(method, a, b)
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return cls("isotonic", x=tuple(float(v) for v in iso.X_thresholds_), yk=tuple(float(v) for v in iso.y_thresholds_))

    def transform(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "none":
            return p.copy()
        if self.method in ("platt", "temperature"):
            return _sigmoid(self.a * _logit(p) + self.b)
        step = np.interp(p, np.asarray(self.x), np.asarray(self.yk))
        return (1 - ISO_MIX) * step + ISO_MIX * p

    def to_dict(self) -> dict:
        d = {"method": self.method}
        if self.method in ("platt", "temperature"):
            d.update(a=self.a, b=self.b)
        elif self.method == "isotonic":
            d.update(x=list(self.x), y=list(self.yk))
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "Calibrator":
        if not d:
            return cls("none")
        m = d.get("method")
        if m not in METHODS:
            raise InvalidFieldError("calibration.method", "must be one of the calibration methods", m, METHODS)
        if m == "none":
            return cls("none")
        if m == "isotonic":
            x, yk = tuple(map(float, d.get("x", ()))), tuple(map(float, d.get("y", ())))
            if len(x) != len(yk) or len(x) < 1 or not np.all(np.isfinite(x)) or any(b < a for a, b in zip(x, x[1:])):
                raise InvalidFieldError("calibration.x", "must be finite increasing knots, as many as calibration.y", list(x)[:5])
            if any(not 0.0 <= v <= 1.0 for v in yk) or any(b < a for a, b in zip(yk, yk[1:])):
                raise InvalidFieldError("calibration.y", "must be non-decreasing values in [0, 1] (a map that keeps the ranking)", list(yk)[:5])
            return cls(m, x=x, yk=yk)
        a, b = float(d.get("a", 1.0)), float(d.get("b", 0.0))
        if not (np.isfinite(a) and a > 0):
            raise InvalidFieldError("calibration.a", "must be a finite slope > 0 (a map that keeps the ranking)", a)
        if not np.isfinite(b) or (m == "temperature" and b != 0.0):
            raise InvalidFieldError("calibration.b", "must be finite (and 0 for temperature)", b)
        return cls(m, a, b)


def choose(p, y, folds, methods: Sequence[str] = METHODS) -> tuple[str, dict]:
    """The method with the lowest cross-validated log loss on (p, y), ``folds`` grouping the rows.

    Each method is fitted on all folds but one and scored on that one; returns (method, {method: log loss}).
    Ties go to the simpler method (earlier in ``methods``).
    """
    p, y, folds = np.asarray(p, dtype=np.float64), np.asarray(y), np.asarray(folds)
    losses = {}
    for m in methods:
        out = np.empty(len(p))
        for k in np.unique(folds):
            test = folds == k
            out[test] = Calibrator.fit(m, p[~test], y[~test]).transform(p[test])
        losses[m] = log_loss(y, out)
    best = min(methods, key=lambda m: (round(losses[m], 9), list(methods).index(m)))
    return best, losses


def fit_on_oof(p, y, folds, methods: Sequence[str] = METHODS) -> Calibrator:
    """The map a model serves with: method chosen by CV over ``folds``, fitted on all its out-of-fold predictions."""
    method, _ = choose(p, y, folds, methods)
    return Calibrator.fit(method, p, y)


def nested_calibrate(p, y, folds, methods: Sequence[str] = METHODS) -> tuple[np.ndarray, list[str]]:
    """Calibrated out-of-fold probabilities whose map for fold k was chosen and fitted on the other folds only;
    returns (probabilities, the method chosen per fold)."""
    p, y, folds = np.asarray(p, dtype=np.float64), np.asarray(y), np.asarray(folds)
    out = np.empty(len(p))
    chosen = []
    for k in np.unique(folds):
        test = folds == k
        cal = fit_on_oof(p[~test], y[~test], folds[~test], methods)
        out[test] = cal.transform(p[test])
        chosen.append(cal.method)
    return out, chosen
