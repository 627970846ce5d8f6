"""Which alarms does the served verdict get wrong, and what do they look like? The error list of the nested verdict,
with the waveforms of the most confident mistakes.

    .venv/bin/python bench/verdict_errors.py [--data DIR] [--seeds 5] [--first-seed 0] [--show 6]

Each record's probability is the served procedure's on the outer fold that holds it (``bench/definition_gates.py``:
K and the map chosen inside, then the definition gate fitted inside, then the VT re-scorer of ``bench/vt_spectral.py``
fitted inside), averaged over the fold seeds; a record is an
error when that mean is on the wrong side of 1/6. Chooses nothing: it reads the same fold predictions as the gate
benches (``bench/shift_nested.py`` keeps them).

Writes bench/results/verdict_errors.json (per alarm type: false alarms passed and true alarms missed, each with its
probability, most confident first; the per-seed error counts) and verdict_errors.png: the 20 s before the alarm of the
``--show`` most confident false alarms of the two types under 75 (VT, bradycardia) and of every missed true alarm, each
signal scaled to its 1-99 % range, the 16 s window the verdict reads marked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from models import definition_gate as dg  # noqa: E402
from models.data import ALARM_TYPES, FS_HZ, alarm_window  # noqa: E402

SHOWN_TYPES = ("Ventricular_Tachycardia", "Bradycardia")


def served_probabilities(b) -> np.ndarray:
    """[fold seeds, records]: the served verdict (gated, VT re-scored) of each record on the outer fold that holds it."""
    from vt_spectral import served_verdict

    return served_verdict(b)[0]


def error_lists(names, T, y, p) -> dict:
    """Per alarm type: false alarms passed and true alarms missed at 1/6, most confident first."""
    out = {}
    for a in ALARM_TYPES:
        m = T == a
        fp = np.flatnonzero(m & (y == 0) & (p >= dg.CUT))
        fn = np.flatnonzero(m & (y == 1) & (p < dg.CUT))
        out[a] = {"false": int((m & (y == 0)).sum()), "true": int((m & (y == 1)).sum()),
                  "false_passed": [[names[i], round(float(p[i]), 3)] for i in fp[np.argsort(-p[fp])]],
                  "true_missed": [[names[i], round(float(p[i]), 3)] for i in fn[np.argsort(p[fn])]]}
    return out


def _plot(records: dict, shown: list[tuple[str, str]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(shown), 1, figsize=(14, 1.9 * len(shown)), squeeze=False)
    for ax, (name, title) in zip(axes[:, 0], shown):
        r = records[name]
        w = alarm_window(r, 20.0).astype(np.float64)
        t = np.arange(w.shape[1]) / FS_HZ - 20.0
        for j in range(w.shape[0]):
            x = w[j]
            if not r.mask[j] or not np.isfinite(x).any():
                continue
            lo, hi = np.nanpercentile(x, [1, 99])
            ax.plot(t, (x - lo) / (hi - lo + 1e-9) + 1.2 * (w.shape[0] - j), lw=0.5, label=str(r.slot_names[j]))
        ax.axvline(-16.0, color="k", lw=0.6)
        ax.set_xlim(-20, 0)
        ax.set_yticks([])
        ax.set_title(title, fontsize=8, loc="left")
        ax.legend(loc="upper left", fontsize=6, ncol=5)
    axes[-1, 0].set_xlabel("seconds before the alarm (the line: start of the 16 s window the verdict reads)")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> int:
    from second_gate import args_and_bench

    args, out_path, b = args_and_bench(__doc__, "verdict_errors", lambda ap: ap.add_argument(
        "--show", type=int, default=6, help="most confident false alarms plotted per type under 75"))
    P = served_probabilities(b)
    p = P.mean(0)
    errors = error_lists(b.names, b.T, b.y, p)
    per_seed = [{"fp": int(((P[i] >= dg.CUT) & (b.y == 0)).sum()), "fn": int(((P[i] < dg.CUT) & (b.y == 1)).sum())}
                for i in range(len(b.seeds))]
    doc = {"command": "bench/verdict_errors.py " + " ".join(sys.argv[1:]), "records": b.n, "fold_seeds": args.seeds,
           "first_seed": args.first_seed, "fold_predictions": b.path.name,
           "rule": "served verdict + definition gate + VT re-scorer, outer-fold probability averaged over the fold seeds, cut at 1/6",
           "per_seed_errors": per_seed, "per_type": errors}
    out_path.write_text(json.dumps(doc, indent=1))
    shown = [(n, f"{n}  {a}  false alarm passed, P = {q:.2f}") for a in SHOWN_TYPES for n, q in errors[a]["false_passed"][: args.show]]
    shown += [(n, f"{n}  {a}  true alarm missed, P = {q:.2f}") for a in ALARM_TYPES for n, q in errors[a]["true_missed"]]
    _plot({r.name: r for r in b.records}, shown, out_path.with_suffix(".png"))
    print(f"{'alarm type':26s} {'false passed':>14s} {'true missed':>12s}")
    for a, e in errors.items():
        print(f"{a:26s} {len(e['false_passed']):5d} of {e['false']:4d} {len(e['true_missed']):5d} of {e['true']:3d}")
    print("per fold seed (FP, FN):", [(d["fp"], d["fn"]) for d in per_seed])
    print(f"wrote {out_path} and {out_path.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
