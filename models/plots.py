"""Pictures of model figures that several commands draw (matplotlib, written to PNG)."""

from __future__ import annotations

import math

import numpy as np


def reliability_diagrams(path, y, probs: dict, title: str = "", bins: int = 10) -> None:
    """One panel per model: observed fraction of true alarms against mean predicted probability in ``bins``
    equal-width bins, raw and calibrated, with each curve's ECE; ``probs``: {name: (raw, calibrated)}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .calibration import ece, reliability

    names = list(probs)
    cols = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for p, label in zip(probs[name], ("raw", "calibrated")):
            if p is None:
                continue
            r = reliability(y, p, bins)
            ok = np.asarray(r["n"]) > 0
            ax.plot(np.asarray(r["mean_p"])[ok], np.asarray(r["frac_true"])[ok], "o-", ms=3, label=f"{label} (ECE {ece(y, p, bins):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.supxlabel("predicted P(true alarm)")
    fig.supylabel("observed fraction of true alarms")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
