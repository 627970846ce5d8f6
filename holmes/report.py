"""``holmes report``: one latency/accuracy trade-off report from what the project has measured.

Reads the registry (members' profiles and out-of-fold predictions), the fitted cascade's report, the benchmark
JSON in ``bench/results`` and measures what is quick to measure itself (a composition at the stated load, the
calibration of the served models, an offline replay of a few records). Writes into ``out_dir``:

    index.html   self-contained (figures embedded), opens in any browser
    report.md    the same text and tables, figures as the PNGs beside it
    *.png        one per figure

Every figure and table names the command and the date its numbers come from; what is missing is said, with
the command that would make it.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .report_cnn import IDEAS, TESTS, cnn_members
from .report_render import Section, html_page, markdown_page, plt_agg as _plt, save_figure as _save
from .report_verdict import RESCORER_RUNS, VERDICT_RUNS, per_type, verdict, verdict_bag, verdict_errors, verdict_uncertainty

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FIGURES = ("pareto", "slo", "cascade_stages", "calibration", "risk_curves", "verdict", "verdict_bag", "verdict_errors", "verdict_uncertainty",
           "cnn_tried", "capacity")
# The results that describe the served default (deploy/holmes.yaml: plan v0004, whose floor row is features-typed alone;
# routine windows scored by features-typed-inc on incremental features, 2 consumers) and the ones of earlier defaults
# (selection: plan v0002's; sweep: features-typed on each whole window, one consumer), which the report names as such.
SERVED = {"selection": "selection_nested_v0004", "sweep": "serve_sweep_c2", "cascade_vs_floor": "cascade_safe_plan_v0004"}
PREVIOUS = {"selection": "selection_nested", "sweep": "serve_sweep_typed"}
SERVED_MODEL = "features-typed"
TARGET_BEDS = 2000  # the throughput target on 2 cores (routine windows and verdicts p99 < 1 s, nothing lost)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dated(path: Path) -> str:
    """The date of a committed result: its last commit, else the file's modification time."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cI", "--", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


def _json(name: str) -> tuple[dict | None, str]:
    p = RESULTS / f"{name}.json"
    if not p.is_file():
        return None, ""
    doc = json.loads(p.read_text())
    own = doc.get("date") or (doc.get("machine") or {}).get("time") if isinstance(doc, dict) else None
    return doc, str(own) if own else _dated(p)  # the run's own date where the JSON has one


def pareto(out_dir: Path, table, plan, cascade: dict | None, serve: dict | None, serve_date: str, reg: dict,
           served: bool = False) -> Section:
    """Nested-CV score against cost: members and cascade points per window; plan rows against p99 at the load."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6))
    ms = table.latency_ms[:, list(table.batch_sizes).index(64)] / 64.0
    from models.zoo_eval import cv_summary

    scores = np.array([cv_summary(table.y, p, table.folds)["score"] for p in table.oof])
    for kind, marker in (("cnn", "o"), ("features", "s"), ("subnet", "x")):
        k = np.array(table.kinds) == kind
        if k.any():
            a.scatter(ms[k], scores[k], marker=marker, alpha=0.8,
                      label="supernet subnets (one set of weights)" if kind == "subnet" else f"{kind} members")
    if cascade:
        c = cascade["curve"]
        a.plot([r["mean_ms"] for r in c], [r["score"] for r in c], "^-", color="C3", label="cascade operating points")
    a.set_xscale("log")
    a.set_xlabel("compute per window (ms, one thread, batch 64)")
    a.set_ylabel("challenge score (nested CV)")
    a.set_title("members and cascade")
    a.legend(fontsize=7)
    rows = [e for e in plan.ensembles if e.members]
    b.plot([e.p99_ms for e in rows], [e.score for e in rows], "o-", label=f"plan rows: predicted p99 ({reg['version']})")
    for e in rows:
        b.annotate(f"{e.budget_ms:g} ms", (e.p99_ms, e.score), fontsize=7)
    if serve:
        got = [r for r in serve["budgets"] if r.get("measured_p99_ms")]
        b.plot([r["measured_p99_ms"] for r in got], [r["score"] for r in got], "s--", alpha=0.7,
               label=f"measured on Ray Serve: bench/serve_budgets.py's plan ({serve['registry']['version']}, {serve_date[:10]})")
    b.set_xscale("log")
    b.set_xlabel(f"p99 latency at {plan.load.get('beds')} beds (ms)")
    b.set_title("HOLMES ensembles per budget")
    b.legend(fontsize=7)
    rows_t = [["budget ms", "members", "nested score", "score on the data it was chosen on", "AUROC", "predicted p99 ms"]]
    rows_t += [[f"{e.budget_ms:g}", str(len(e.members)), f"{e.score:.1f}", f"{e.score_in_sample:.1f}", f"{e.auroc:.3f}", f"{e.p99_ms:.0f}"]
               for e in rows]
    n_sub = int(np.sum(np.array(table.kinds) == "subnet"))
    text = ("Nested-CV challenge score of every member, the cascade's budgets and the composer's plan rows (search and "
            "threshold chosen without the fold scored).")
    if n_sub:
        text += (f" The {n_sub} supernet subnets (one set of weights) are members like the others; "
                 "bench/supernet_front.py compares them with the zoo CNNs, best of each family chosen nested.")
    origin = (f"the served plan deploy/plan.json (`holmes compose --version {reg['version']}`, {_dated(SERVED_PLAN)[:10]})" if served else
              f"`holmes compose --beds {plan.load.get('beds')}` run by this report, {_now()[:10]}")
    return Section("Latency / accuracy front", text, _save(fig, out_dir, "pareto"),
                   f"registry {reg['version']} profiles; `holmes cascade report` ({cascade and 'bench/results/cascade_report.json'}); "
                   f"plan rows: {origin}", rows_t,
                   [] if n_sub else ["supernet subnets: none in the registry (`holmes train --only supernet`)"])


def slo(out_dir: Path, serve: dict | None, date: str, reg: dict) -> Section:
    if not serve:
        return Section("SLO attainment per budget and load", missing=["no serve benchmark: run bench/serve_budgets.py"])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    rows = serve["budgets"]
    ax.bar([f"{r['budget_ms']:g} ms" for r in rows], [100 * r.get("within_budget", np.nan) for r in rows], color="C2")
    ax.set_ylabel("% of requests within budget")
    ax.set_ylim(0, 105)
    ax.set_title(f"{serve['load']['beds']} beds x {serve['load']['rate_hz']:g}/s, {serve['load']['windows_per_request']} windows/request")
    stale = serve["registry"]["version"] != reg["version"]
    table = [["budget ms", "p50 ms", "p99 ms", "within budget"]]
    table += [[f"{r['budget_ms']:g}", f"{r.get('measured_p50_ms', float('nan')):.0f}", f"{r.get('measured_p99_ms', float('nan')):.0f}",
               f"{100 * r.get('within_budget', float('nan')):.0f} %"] for r in rows]
    burst = serve.get("burst", {})
    text = "Measured on the running Ray Serve application." + (
        f" Burst: policy {100 * burst['policy']['within_deadline']:.0f} % within the deadline." if "policy" in burst else "")
    missing = [f"measured with registry {serve['registry']['version']}, not the current {reg['version']}: rerun bench/serve_budgets.py"] if stale else []
    return Section("SLO attainment per budget and load", text, _save(fig, out_dir, "slo"), f"bench/serve_budgets.py, {date}", table, missing)


def cascade_stages(out_dir: Path, cascade: dict | None, date: str, costs: dict | None, costs_date: str,
                   vs_floor: dict | None = None) -> Section:
    if not cascade:
        return Section("Cascade: cost per stage", missing=["no cascade report: run `holmes cascade fit && holmes cascade report`"])
    plt = _plt()
    cv = cascade["cv"]
    labels, parts = [], {"ICK0": [], "IDK": [], "ICK1": []}
    for st in cv["per_stage"]:
        for r in st["rungs"]:
            labels.append(f"{st['stage']}/{r['rung']}")
            for k in parts:
                parts[k].append(r[k])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    left = np.zeros(len(labels))
    for k, color in (("ICK0", "C2"), ("IDK", "C7"), ("ICK1", "C3")):
        ax.barh(labels, parts[k], left=left, color=color, label=k)
        left += np.asarray(parts[k])
    ax.invert_yaxis()
    ax.set_xlabel("windows (nested CV, the served budget)")
    ax.legend(fontsize=7)
    table = [["component", "ms per window (batch 64)"]] + [[r["component"], f"{r['ms_per_window']:.3f}"] for r in (costs or {}).get("rows", [])]
    text = (f"Cascade {cascade.get('cascade_version')} (the previous default for routine windows, fitted on plan v0002's floor row): "
            f"score {cv['score']:.2f} at {cv['mean_ms']:.3f} ms/window against "
            f"{cv['full_ensemble_ms']:.2f} ms for the full ensemble ({cv['ms_reduction_x']:.1f}x less); "
            f"{100 * cv['frac_reached_ensemble']:.1f} % of windows reach the ensemble.")
    fe = (vs_floor or {}).get("full_ensemble")
    if fe:
        best = max((r for r in vs_floor.get("rows", []) if r.get("score_mean") is not None), key=lambda r: r["score_mean"], default=None)
        text += (f" It is no longer served by default: on the served floor row ({SERVED_MODEL}), scoring every window gives "
                 f"{fe['score_mean']:.2f} +- {fe['score_sd']:.2f} (nested, {vs_floor.get('seeds')} fold seeds) at {fe['ms']['measured']:.2f} ms/window")
        if best is not None:
            text += (f", the best cascade setting {best['score_mean']:.2f} +- {best['score_sd']:.2f} at {best['mean_ms_mean']:.2f} ms/window "
                     f"({best['ms_reduction_x_mean']:.2f}x the saving: the cascade is both less accurate and no cheaper)"
                     if best["ms_reduction_x_mean"] < 1 else
                     f", the best cascade setting {best['score_mean']:.2f} +- {best['score_sd']:.2f} at {best['mean_ms_mean']:.2f} ms/window "
                     f"({best['ms_reduction_x_mean']:.1f}x less compute)")
        text += f" (bench/cascade_safe.py, bench/results/{SERVED['cascade_vs_floor']}.json)."
    return Section("Cascade: cost per stage", text, _save(fig, out_dir, "cascade_stages"),
                   f"`holmes cascade report`, {date}; component costs bench/cascade_costs.py, {costs_date}", table)


def calibration(out_dir: Path, table, cascade: dict | None) -> Section:
    from models.calibration import ece, nested_calibrate
    from models.plots import reliability_diagrams
    from models.zoo_eval import ZOO_ENSEMBLE, combine_rows

    probs = combine_rows({n: p for n, p in zip(table.names, table.oof)}, dict(zip(table.names, table.kinds)))
    pick = [n for n in (SERVED_MODEL, "features-vote", ZOO_ENSEMBLE) if n in probs]
    cal = {n: nested_calibrate(probs[n], table.y, table.folds)[0] for n in pick}
    reliability_diagrams(out_dir / "calibration.png", table.y, {n: (probs[n], cal[n]) for n in pick}, title="out-of-fold, 10 bins")
    rows = [["model", "ECE raw", "ECE calibrated (map chosen and fitted on the other folds)"]]
    rows += [[n, f"{ece(table.y, probs[n]):.3f}", f"{ece(table.y, cal[n]):.3f}"] for n in pick]
    cv = (cascade or {}).get("cv", {})
    if "ece_calibrated" in cv:
        rows.append([f"cascade {cascade.get('cascade_version')} (previous default; a map per deciding rung)", f"{cv['ece']:.3f}",
                     f"{cv['ece_calibrated']:.3f}"])
    return Section("Calibration of the served models", "Every path publishes calibrated probabilities with unchanged verdicts: "
                   f"routine windows by {SERVED_MODEL} in process through the map fitted on its out-of-fold predictions, each Ray "
                   "Serve plan row (verdicts: the floor row, " + SERVED_MODEL + " alone) through the map of its members' mean, the "
                   "cascade (when served) through a map per deciding rung.", "calibration",
                   f"registry OOF predictions, computed by this report {_now()[:10]}; cascade: `holmes cascade fit`", rows)


def risk_curves(out_dir: Path, data=None, n: int = 4) -> Section:
    import warnings

    import streams.feature_scorer  # noqa: F401 - registers "features"
    from models.data import load_dataset, resolve_data_dir
    from streams.offline import OfflineConfig, replay_offline
    from streams.scorer import make_scorer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs, _ = load_dataset(resolve_data_dir(data))
    picks, seen = [], set()
    for r in recs:
        if (r.alarm_type, r.label) not in seen and len(picks) < n and r.label is not None:
            picks.append(r)
            seen.add((r.alarm_type, r.label))
    scorer = make_scorer("features")
    t0 = time.perf_counter()
    rows, stats = replay_offline(picks, lambda: scorer, OfflineConfig(start_s=180.0), workers=1, progress=False)
    plt = _plt()
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 1.7 * len(picks)), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], picks):
        mine = [x for x in rows if x["record"] == r.name]
        t = [x["window_end_s"] for x in mine]
        ax.plot(t, [x["probability"] for x in mine], color="k", lw=1, label="calibrated risk")
        ax.fill_between(t, 0, [float(x["risk_alarm"]) for x in mine], step="post", alpha=0.2, color="C3", label="risk alarm")
        ax.axvline(300, color="r", ls=":", lw=1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{r.name} {r.alarm_type}: {'true' if r.label else 'false'} monitor alarm at 300 s", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    axes[-1, 0].set_xlabel("window end (s)")
    return Section("Risk curves around alarms", f"Offline replay (`holmes replay --offline`), features scorer, {len(rows)} windows in "
                   f"{time.perf_counter() - t0:.1f} s. These records trained the registry: a picture of the path, not an accuracy figure.",
                   _save(fig, out_dir, "risk_curves"), f"`holmes replay --offline --records {' '.join(r.name for r in picks)} --start-s 180`, "
                   f"run by this report {_now()[:10]}")


def capacity(out_dir: Path, sweep: dict | None, date: str, previous: dict | None = None) -> Section:
    """Beds on the served path (bench/serve_sweep.py): p99 against beds, and where the CPU of a window goes."""
    title = "Beds on the served path"
    rows = [r for r in (sweep or {}).get("rows", []) if "error" not in r]
    if not rows:
        return Section(title, missing=["no beds sweep: run bench/serve_sweep.py"])
    plt = _plt()
    ward = sorted((r for r in rows if not r["burst"]), key=lambda r: r["beds"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    beds = [r["beds"] for r in ward]
    for key, style, label in (("routine_e2e_ms", "o-", "routine windows"), ("verdict_e2e_ms", "s--", "verdicts")):
        a1.plot(beds, [r[key].get("p99", np.nan) / 1e3 for r in ward], style, label=f"{label} p99")
    a1.axhline(1.0, color="r", lw=0.8)
    a1.set_yscale("log")
    a1.set_xlabel("beds")
    a1.set_ylabel("e2e p99 (s)")
    a1.legend(fontsize=8)
    groups: dict[str, list[float]] = {}
    for j, r in enumerate(ward):
        n = max(1.0, float(r["steady_windows"]))  # windows published while every bed streamed (the CPU's span)
        for k, v in r["cpu_s_by_process"].items():
            g = "Ray Serve members" if k.startswith("ray::holmes:member") else ("Ray (other)" if k.startswith("ray") and "Ingress" not in k else k)
            groups.setdefault(g, [0.0] * len(ward))[j] += v / n * 1e3
    bottom = np.zeros(len(ward))
    for g, h in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
        a2.bar([str(b) for b in beds], h, bottom=bottom, label=g)
        bottom += np.asarray(h)
    a2.set_xlabel("beds")
    a2.set_ylabel("CPU ms per published window")
    a2.legend(fontsize=6)
    table = [["beds", "case", "routine p50/p99 ms", "verdict p50/p99 ms", "lost", "CPU ms/window", "holds"]]
    for r in sorted(rows, key=lambda r: (r["burst"], r["beds"])):
        rr, vv = r["routine_e2e_ms"], r["verdict_e2e_ms"]
        table.append([str(r["beds"]), "burst" if r["burst"] else "ward", f"{rr.get('p50')}/{rr.get('p99')}", f"{vv.get('p50')}/{vv.get('p99')}",
                      str(r["windows_lost"]), str(r["cpu_ms_per_window"].get("all")), "yes" if r["holds"] else "no"])
    fc = rows[0]["features_cost"]["rows"][0]["median_ms"]
    text = (f"holmes serve fed by holmes replay in real time on this machine (bench/features_cost.py: {fc:.2f} ms per window), every "
            f"{sweep['alarm_every']}th bed raising an alarm. Largest bed count with routine and verdict p99 under 1 s and nothing lost: "
            f"{sweep.get('largest_beds_holding')}.")
    if sweep.get("serve_args"):
        text += f" holmes serve {sweep['serve_args']}."
    if previous and previous.get("largest_beds_holding"):
        text += (f" The previous default (features-typed on each whole window, one consumer) held "
                 f"{previous['largest_beds_holding']} beds (bench/results/{PREVIOUS['sweep']}.json).")
    text += _speed_caveat()
    held = sweep.get("largest_beds_holding") or 0
    missing = [] if held >= TARGET_BEDS else [
        f"{TARGET_BEDS:,} beds on 2 cores with p99 < 1 s (the throughput target): not reached by the served default in this sweep "
        f"(incremental routine scorer, 2 consumers), largest holding {held:,}; at 2,000 beds ~1.9 of 2 cores are busy (broker, "
        f"two consumers, the load generator)." + _incremental_capacity()]
    return Section(title, text, _save(fig, out_dir, "capacity"), f"bench/serve_sweep.py, {date}", table, missing)


INCREMENTAL_RUNS = (  # bench/serve_beds.py runs of the incremental routine scorer, in the order they were made
    ("serve_beds_inc_2000_incremental_ff", "1 consumer"),
    ("serve_beds_mc_2000_c1", "1 consumer, repeated a session later"),
    ("serve_beds_mc_2000_c2", "2 consumers, right after"),
    ("serve_beds_default_1000", "the served default (2 consumers)"),
    ("serve_beds_sweep_2000_c2", "the served default, sweep of stop 25"),
    ("serve_beds_sweep_1000_c2", "the served default, same sweep"),
    ("serve_beds_blend_1000", "the served default with blended verdicts"),
)


def _incremental_capacity() -> str:
    """What the runs of the incremental routine scorer (the served default since stop 24) measured, those that are there."""
    parts = []
    for name, label in ((n, lab) for n, lab in INCREMENTAL_RUNS if (RESULTS / f"{n}.json").is_file()):
        r = json.loads((RESULTS / f"{name}.json").read_text())
        rr, vv = r["routine_e2e_ms"], r["verdict_e2e_ms"]
        held = rr.get("p99", 1e9) < 1000 and vv.get("p99", 1e9) < 1000 and r["windows_published"] >= r["expected_windows"]
        parts.append(f"{r['beds']:,} beds, {label}: {'held' if held else 'not held'} (routine p99 {rr.get('p99')} ms, verdicts p99 "
                     f"{vv.get('p99')} ms, {r['windows_published']:,}/{r['expected_windows']:,} windows, features_cost "
                     f"{r['features_cost']['rows'][-1]['median_ms']:.2f} ms; {name}.json)")
    return "" if not parts else (
        " The served default is now the incremental routine scorer (per-patient incremental features, models/incremental.py) "
        "with 2 consumer processes; its runs: " + "; ".join(parts) + ". The 2,000-bed figure moved with the machine: held "
        "once, then 2 consumers were needed to come back to the 1 s line, with no margin, and a later sweep missed it (p99 3.5 s).")


SERVED_PLAN = ROOT / "deploy" / "plan.json"


def _served_plan(reg: dict):
    """deploy/plan.json (the served plan) if it was composed on registry version ``reg['version']``, else None."""
    from holmes.compose.plan import Plan

    if not SERVED_PLAN.is_file():
        return None
    plan = Plan.load(SERVED_PLAN)
    return plan if (plan.registry or {}).get("version") == reg.get("version") else None


def _speed_caveat() -> str:
    """The same served path re-run later at 1,000 beds (bench/results/serve_beds_ab_*.json): the machine's speed moves."""
    runs = []
    for p in sorted(RESULTS.glob("serve_beds_ab_*.json")):
        d = json.loads(p.read_text())
        fc = d.get("features_cost", {}).get("rows", [{}])[0].get("median_ms")
        workers = "2 scoring processes" if "--score-workers 2" in str(d.get("serve_args", "")) else "1 scoring process"
        if fc is not None and d.get("routine_e2e_ms", {}).get("p99") is not None:
            runs.append(f"{workers}: features {fc:.2f} ms, routine p99 {d['routine_e2e_ms']['p99'] / 1e3:.1f} s")
    if not runs:
        return ""
    return (" Capacity moves with the machine's speed: re-run at 1,000 beds when bench/features_cost.py gave 1.2-1.6 ms per "
            "window, the same path did not hold (" + "; ".join(runs) + "; bench/results/serve_beds_ab_*.json).")


def build(out_dir, registry=None, data=None, beds: int = 64, progress: bool = True) -> Path:
    """Write the report into ``out_dir``; returns the path of index.html."""
    from holmes.compose import ZooTable
    from holmes.compose.composer import compose
    from holmes.queueing import LatencyModel, Load

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, reg = ZooTable.from_registry(registry)
    plan = _served_plan(reg)  # the plan `holmes serve` serves, when it was composed on this registry version
    served = plan is not None
    if not served:
        plan = compose(table, [50, 100, 250, 500, 1000], Load(beds, 1.0, 64, "periodic"), LatencyModel(), registry=reg, progress=progress)
    cascade, cdate = _json("cascade_report")
    serve, sdate = _json("serve_budgets")
    costs, kdate = _json("cascade_costs")
    sel, seldate = _json(SERVED["selection"])
    sweep, swdate = _json(SERVED["sweep"])
    vs_floor, _ = _json(SERVED["cascade_vs_floor"])
    previous, _ = _json(PREVIOUS["sweep"])
    sections = [pareto(out_dir, table, plan, cascade, serve, sdate, reg, served), slo(out_dir, serve, sdate, reg),
                cascade_stages(out_dir, cascade, cdate, costs, kdate, vs_floor), calibration(out_dir, table, cascade),
                risk_curves(out_dir, data), per_type(sel, seldate),
                verdict(out_dir, [(label, *_json(name)) for name, label in VERDICT_RUNS], RESULTS / "definition_gates.png",
                        [(label, *_json(name)) for name, label in RESCORER_RUNS], _json("brady_agree_gate"), _json("brady_reading_nested")),
                verdict_bag(out_dir, *_json("verdict_bag"), RESULTS / "verdict_bag.png"),
                verdict_errors(out_dir, *_json("verdict_errors"), RESULTS / "verdict_errors.png"),
                verdict_uncertainty(out_dir, *_json("verdict_uncertainty"), RESULTS / "verdict_uncertainty.png"),
                *cnn_members(out_dir, [(name, *_json(name)) for name in IDEAS], [(name, *_json(name)) for name in TESTS]),
                capacity(out_dir, sweep, swdate, previous)]
    meta = {"generated": _now(), "registry": reg, "records": len(table.records)}
    (out_dir / "report.md").write_text(markdown_page(sections, meta))
    index = out_dir / "index.html"
    index.write_text(html_page(sections, meta, out_dir))
    return index
