"""The fitted cascade scored on the alarm windows of any folder (``holmes evaluate --data OTHER_DIR``)."""

from __future__ import annotations

import logging

import numpy as np

from models.metrics import summarize

log = logging.getLogger(__name__)


def cascade_row(records, cascade_dir=None, version: str | None = None, name: str = "cascade"):
    """(row, (prob, verdict)) of the fitted cascade on ``records`` (labelled), or None without a fitted one."""
    from models.errors import HolmesInputError
    from models.zoo_eval import alarm_batch

    from models.calibration import ece
    from models.metrics import auroc

    from .calibrate import publish
    from .persist import load
    from .scorer import rung_maps, score_windows

    try:
        fitted = load(cascade_dir, version)
    except HolmesInputError as e:
        log.info("no cascade row: %s", e)
        return None
    labelled = [r for r in records if r.label is not None]
    w, m, a = alarm_batch(labelled, 16.0)
    res, runner = score_windows(fitted, w, m, a)
    y = np.array([r.label for r in labelled])
    overlap = len(set(fitted.info.get("records", [])) & {r.name for r in labelled})
    if overlap:
        log.warning("%d of %d records were used to fit cascade %s: its row is in-sample", overlap, len(labelled), fitted.version)
    published = publish(rung_maps(fitted), res.probability, res.paths)  # what the stream publishes
    row = {"name": name, "threshold": None, "cascade_version": fitted.version, "in_sample_records": overlap,
           **summarize(y, res.probability, res.positive, a),  # AUROC of the deciding rungs' own probabilities, as before
           "auroc_published": auroc(y, published),  # per-rung maps can reorder windows across rungs
           "ece": ece(y, published), "ece_raw": ece(y, res.probability),
           "mean_ms": float(res.cost_ms.mean()), "measured_total_ms": float(sum(c["ms"] for c in runner.calls)),
           "frac_reached_ensemble": len(runner.costly_prob) / max(1, len(labelled))}
    return row, (published, res.positive)
