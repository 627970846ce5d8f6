"""The budget-vs-score curve of a fitted cascade: table rows, JSON and a PNG."""

from __future__ import annotations

from pathlib import Path

COLUMNS = [("budget", "budget ms/stage", ""), ("score", "score", ".2f"), ("auroc_deciding_prob", "AUROC", ".3f"),
           ("tpr", "TPR", ".3f"), ("tnr", "TNR", ".3f"), ("fn", "missed", ".0f"), ("mean_ms", "ms/window", ".3f"), ("ms_reduction_x", "ms x less", ".1f"),
           ("mean_macs", "MACs/window", ".3g"), ("macs_reduction_x", "MACs x less", ".1f"), ("frac_reached_ensemble", "to ensemble", ".3f")]
STAGE_COLUMNS = [("rung", "stage/rung", ""), ("ran", "ran", ".0f"), ("ICK0", "ICK0", ".0f"), ("IDK", "IDK", ".0f"),
                 ("ICK1", "ICK1", ".0f"), ("stopped_frac_of_stage", "stopped (of stage)", ".3f")]


def curve_rows(info: dict) -> list[dict]:
    rows = [{**c, "budget": "none" if c["budget_ms"] is None else f"{c['budget_ms']:g}"} for c in info["curve"]]
    return sorted(rows, key=lambda r: float("inf") if r["budget_ms"] is None else r["budget_ms"])


def stage_rows(summary: dict) -> list[dict]:
    return [{**r, "rung": f"{s['stage']}/{r['rung']}"} for s in summary["per_stage"] for r in s["rungs"]]


def log_ms_axis(ax, values) -> None:
    """A log x axis of milliseconds with a few plain tick labels (0.1, 0.2, 0.5, 1, ...) spanning ``values``."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    lo, hi = min(values), max(values)
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if lo / 1.5 <= t <= hi * 1.5]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticklabels([f"{t:g}" for t in ticks])


def plot(info: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = curve_rows(info)
    fig, ax = plt.subplots(figsize=(7, 4.6))
    x = [r["mean_ms"] for r in rows]
    y = [r["score"] for r in rows]
    ax.plot(x, y, "o-", color="C0", label="cascade (nested CV; gates per fold from the other folds)")
    groups: dict[tuple, list[str]] = {}
    for r in rows:  # budgets that give the same point share one label
        groups.setdefault((round(r["mean_ms"], 2), round(r["score"], 2)), []).append(r["budget"])
    for k, ((mx, sy), names) in enumerate(groups.items()):
        label = names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
        label += " ms"
        ax.annotate(label, (mx, sy), textcoords="offset points", xytext=(4, -10 if k % 2 == 0 else 5), fontsize=7, color="C0")
    for i, b in enumerate(info["baselines"]):
        ax.plot([b["mean_ms"]], [b["score"]], "s", color=f"C{i + 1}", label=f"{b['name']} on every window")
    full = info["baselines"][-1]
    ax.axhline(full["score"] - 1.0, color="grey", ls=":", lw=1, label="full ensemble - 1 point")
    ax.axvline(full["mean_ms"] / 20.0, color="grey", ls="--", lw=1, label="20x less compute than the full ensemble")
    chosen = info["cv"]
    ax.plot([chosen["mean_ms"]], [chosen["score"]], "*", ms=14, color="C0", label=f"served cascade (budget {info['budget_ms']} ms/stage)")
    log_ms_axis(ax, x + [b["mean_ms"] for b in info["baselines"]])
    ax.set_xlabel("model compute per window (ms, measured, log scale)")
    ax.set_ylabel(f"challenge score (nested CV, {info['cv']['n']} records)")
    ax.set_title("UnfoldML cascade: budget vs challenge score (labels: per-stage budget, ms)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
