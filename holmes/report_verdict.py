"""The report's sections on the verdict: the ensemble rules per alarm type, and on the served verdict its nested
accuracy, the alarms it gets wrong, and what its figure allows on other records.

Both take the benchmark JSON already read (``holmes.report`` reads and dates it) and the picture to copy beside the
report, so they can be built from any results folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .report_render import Section

VERDICT_RUNS = (("definition_gates", "fold seeds 0..4"), ("definition_gates_seeds5to9", "fold seeds 5..9"))
RESCORER_RUNS = (("vt_spectral", "fold seeds 0..4"), ("vt_spectral_seeds5to9", "fold seeds 5..9"))
RESCORED = "served gate + VT re-scorer on spectral purity and high-band share (fitted inside)"  # bench/vt_spectral.py's candidate
SHORT = {"Ventricular_Tachycardia": "VT", "Ventricular_Flutter_Fib": "VF/flutter"}


def _figure(png: Path, out_dir: Path, name: str) -> str | None:
    if not png.is_file():
        return None
    shutil.copy(png, out_dir / f"{name}.png")
    return name


def per_type(sel: dict | None, date: str) -> Section:
    """The ensemble rules' nested challenge score per alarm type (bench/selection_nested.py's JSON ``sel``)."""
    if not sel:
        return Section("Per alarm type", missing=["no nested rule comparison: run bench/selection_nested.py"])
    rules = list(sel["summary"])
    types = list(sel["summary"][rules[0]]["per_type_global_thr"])
    rows = [["rule"] + [t.replace("Ventricular_", "V-") for t in types] + ["all", "AUROC", "ECE"]]
    for r in rules:
        s = sel["summary"][r]
        rows.append([r] + [f"{s['per_type_global_thr'][t]['mean']:.1f}" for t in types] +
                    [f"{s['score_global_thr']['mean']:.1f} +- {s['score_global_thr']['sd']:.1f}", f"{s['auroc']['mean']:.3f}", f"{s['ece']['mean']:.3f}"])
    return Section("Per alarm type", f"Challenge score per alarm type, nested CV over {sel['seeds']} fold seeds (subset, calibration and "
                   f"threshold chosen on inner folds). Winner: {sel['winner']['rule']}.", None, f"bench/selection_nested.py, {date}", rows)


def verdict(out_dir: Path, runs: list[tuple[str, dict | None, str]], png: Path,
            rescored: list[tuple[str, dict | None, str]] = (), agree: tuple[dict | None, str] = (None, ""),
            picked: tuple[dict | None, str] = (None, "")) -> Section:
    """The verdict lane as served (plan row + incremental model, shifted and mapped, then the definition gate and the
    VT re-scorer): its nested figures per fold-seed set (``runs``: label, bench/definition_gates.py's JSON, its date;
    ``rescored``: the same of bench/vt_spectral.py, whose re-scorer row is the verdict as served), and the gate bench's
    picture ``png``; ``agree``: bench/brady_agree_gate.py's JSON and date, the second gate's rows; ``picked``:
    bench/brady_reading_nested.py's, the same with the second gate's reading also chosen on inner folds)."""
    title = "The served verdict: nested accuracy"
    runs = [(label, doc, date) for label, doc, date in runs if doc]
    if not runs:
        return Section(title, missing=["no nested verdict figures: run bench/shift_nested.py --seeds 5, then bench/definition_gates.py --seeds 5"])
    types = list(next(iter(runs[0][1]["summary"].values()))["per_type"])
    rows = [["rule", "fold seeds", "score", "vs served shift", "AUROC", "ECE"] + [t.replace("Ventricular_", "V-") for t in types]]
    for label, doc, _ in runs:
        for rule, sm in doc["summary"].items():
            d = sm["minus_served"]
            rows.append([rule, label, f"{sm['score']['mean']:.2f} +- {sm['score']['sd']:.2f}",
                         "" if d["mean"] == 0 and d["sd"] == 0 else f"{d['mean']:+.2f} +- {d['sd']:.2f} ({d['seeds_better']}/{doc['fold_seeds']})",
                         f"{sm['auroc']['mean']:.3f}", f"{sm['ece']['mean']:.3f}"] + [f"{sm['per_type'][t]['mean']:.1f}" for t in types])
    rescored = [(label, doc, date) for label, doc, date in rescored if doc and RESCORED in doc["summary"]]
    for label, doc, _ in rescored:
        sm = doc["summary"][RESCORED]
        d = sm["minus_served"]
        rows.append([f"as served: {RESCORED}", label, f"{sm['score']['mean']:.2f} +- {sm['score']['sd']:.2f}",
                     f"{d['mean']:+.2f} +- {d['sd']:.2f} ({d['seeds_better']}/{doc['fold_seeds']}) over the gate",
                     f"{sm['auroc']['mean']:.3f}", f"{sm['ece']['mean']:.3f}"] + [f"{sm['per_type'][t]['mean']:.1f}" for t in types])
    adoc, adate = agree
    pdoc, pdate = picked
    pdoc = pdoc if pdoc and "readings_chosen" in pdoc and "family" in pdoc else None  # a half-written run: left out
    for doc, rule in ((adoc, "as served: + the second gate (bradycardia: the fastest source's 5-beat rate)"),
                      (pdoc, "+ the second gate, its reading also chosen on inner folds (bench/brady_reading_nested.py)")):
        for label, st in (doc["single_pipeline"]["sets"].items() if doc else ()):
            rows.append([rule, f"fold seeds {label}", f"{st['candidate_mean']:.2f}",
                         f"{st['gain_mean']:+.2f} +- {st['gain_sd']:.2f} ({st['seeds_better']}/5) over the served verdict before it, same set",
                         "", ""] + [f"{st['brady_candidate']:.1f}" if t == "Bradycardia" else "" for t in types])
    served = [(label, doc["gated_outer"][next(iter(doc["margins"]))]) for label, doc, _ in runs]  # the first rule: the served gate
    gated = "; ".join(f"{label}: {g['windows']} outer windows gated, {g['true']} of them true alarms" for label, g in served)
    text = ("When a monitor raises an alarm, the service answers with the plan row on the alarm window averaged with the incremental "
            "model on the patient's last windows, through a calibration map, then capped below the 1/6 cut where the window misses "
            "the alarm's own definition by the fitted margin (a VT alarm whose fastest 5 ECG beats are under 80 bpm; an asystole alarm "
            "with no 3.2 s pause all voting sources agree on); every VT verdict is then re-scored, weighed against the spectral "
            "purity of the alarm window's last 10 s (a VT run gathers its power at one rate; the 'as served' rows, bench/vt_spectral.py). "
            "A second gate then caps a bradycardia verdict when the fastest source's slowest 5-beat rate is over 48 bpm (a real "
            "bradycardia slows every source; bench/brady_agree_gate.py; its reading was picked after looking at the bradycardia "
            "alarms' labels, so that row's gain is optimistic by how lucky the pick was" + (
                f"; with the reading itself chosen on inner folds among {len(pdoc['family'])} written down first, the served one "
                f"was chosen on {pdoc['readings_chosen'].get('served', 0)} of {sum(pdoc['readings_chosen'].values())} outer folds "
                f"and the bag of 5 reads {pdoc['bag']['candidate']['mean']:.2f} against {_agree_bag(adoc)}, the rows marked "
                "'also chosen on inner folds'" if pdoc else "") + "). "
            "Nested, record-grouped CV: everything chosen on inner folds, scored on "
            f"outer folds, 5 fold seeds per set; {gated}. The gate's 20 % margin floor was set after a first grid from 10 % gated "
            "true alarms; that grid's row is the figure with nothing chosen after looking. The two 'side maps' rows put each side "
            "through its own calibration map first, fitted on the inner folds, exactly as the service's fit does; the other rows "
            "average the two models' own probabilities. The picture: paired differences, and per alarm type the reading against the "
            "served probability with the limits chosen.")
    sources = [(doc, date) for _, doc, date in (*runs, *rescored)] + ([(adoc, adate)] if adoc else []) + ([(pdoc, pdate)] if pdoc else [])
    return Section(title, text, _figure(png, out_dir, "verdict"), "; ".join(f"{doc['command']}, {date}" for doc, date in sources), rows)


def _agree_bag(adoc: dict | None) -> str:
    return f"{adoc['bag']['candidate']['mean']:.2f} with the pick" if adoc else "the pick's figure (bench/brady_agree_gate.py not run)"


def verdict_errors(out_dir: Path, doc: dict | None, date: str, png: Path, names_shown: int = 4) -> Section:
    """The alarms the nested verdict gets wrong (bench/verdict_errors.py's JSON ``doc``): per alarm type the false alarms
    it passes and the true alarms it misses, the most confident ones by name, and the picture ``png`` of their signals."""
    title = "The served verdict: which alarms it gets wrong"
    if not doc:
        return Section(title, missing=["no error list of the verdict: run bench/verdict_errors.py (seconds, after bench/shift_nested.py --seeds 5)"])
    rows = [["alarm type", "false alarms passed", "true alarms missed", "most confident false alarms passed (P)", "true alarms missed (P)"]]
    for a, e in doc["per_type"].items():
        rows.append([SHORT.get(a, a), f"{len(e['false_passed'])} of {e['false']}", f"{len(e['true_missed'])} of {e['true']}",
                     ", ".join(f"{n} ({p:.2f})" for n, p in e["false_passed"][:names_shown]),
                     ", ".join(f"{n} ({p:.2f})" for n, p in e["true_missed"])])
    fp = [d["fp"] for d in doc["per_seed_errors"]]
    fn = [d["fn"] for d in doc["per_seed_errors"]]
    text = (f"Each record's verdict on the outer fold that holds it ({doc['rule']}; {doc['fold_seeds']} fold seeds, nothing chosen "
            f"on a scored record). Per fold seed the verdict passes {min(fp)}-{max(fp)} false alarms and misses {min(fn)}-{max(fn)} "
            "true ones; a missed alarm costs five passed ones in the challenge score. The picture shows the 20 s before the alarm "
            "(the line: where the verdict's 16 s window starts) of the most confident false VT and bradycardia alarms and of every "
            "missed true alarm, so a clinician can see what kind of mistake it makes: on these records, frequent single or paired "
            "ectopic beats and ECG artefact under a steady pulse among the false VT alarms, clean rhythms a little over 40 bpm among "
            "the false bradycardia alarms.")
    return Section(title, text, _figure(png, out_dir, "verdict_errors"), f"{doc['command']}, {date}", rows)


def verdict_uncertainty(out_dir: Path, doc: dict | None, date: str, png: Path) -> Section:
    """What the nested verdict figure allows on other records (bench/verdict_uncertainty.py's JSON ``doc``): the ranges of
    a record-level bootstrap at this folder's size and at a new set's, per alarm type, and its picture ``png``."""
    title = "The served verdict: what to expect on other records"
    if not doc:
        return Section(title, missing=["no record-level ranges of the verdict: run bench/verdict_uncertainty.py (seconds, after bench/shift_nested.py --seeds 5)"])
    sizes = (("development size", doc["development_size"]), ("new set", doc["new_set"]))
    rows = [["records drawn", "score 5-95 %", "AUROC 5-95 %", f"draws >= {doc['goal']:.0f}"]
            + [f"{SHORT.get(a, a)} 5-95 % (>= 75)" for a in doc["new_set"]["per_type"]]]
    for _, r in sizes:
        rows.append([str(r["records"]), f"{r['score']['p5']:.1f}-{r['score']['p95']:.1f}", f"{r['auroc']['p5']:.3f}-{r['auroc']['p95']:.3f}",
                     f"{100 * r['share_at_or_above_goal']:.0f} %"]
                    + [f"{t['p5']:.0f}-{t['p95']:.0f} ({100 * t['share_at_or_above_75']:.0f} %)" for t in r["per_type"].values()])
    pt, g, new = doc["point"], doc["gate_gain_paired"], doc["new_set"]
    text = (f"The nested figure ({pt['score']:.2f}, AUROC {pt['auroc']:.3f}) comes from {doc['records']} records; other alarms from "
            f"the same monitors would score differently. Redrawing the records (per alarm type, with replacement, {doc['draws']} draws, "
            f"the outer-fold verdicts of {doc['fold_seeds']} fold seeds held fixed): on a set of {new['records']} new alarms the served "
            f"verdict scores {new['score']['p5']:.1f}-{new['score']['p95']:.1f} in 90 % of draws and reaches the goal of "
            f"{doc['goal']:.0f} in {100 * new['share_at_or_above_goal']:.0f} % of them by chance of the draw alone. The two types under "
            "75 stay uncertain at either size. A paired comparison is much tighter than either figure: the definition gate's gain, "
            f"{g['point']:+.2f}, stays between {g['p5']:+.2f} and {g['p95']:+.2f} over the same draws. The draws vary the records "
            "scored, not those trained on; the spread over fold seeds is that other half.")
    return Section(title, text, _figure(png, out_dir, "verdict_uncertainty"), f"{doc['command']}, {date}", rows)


def verdict_bag(out_dir: Path, doc: dict | None, date: str, png: Path) -> Section:
    """The published verdict as a bag of whole pipelines (bench/verdict_bag.py's JSON ``doc``): its nested figure against
    the number of pipelines averaged, the two disjoint bags of 5, what they allow on a new set, and the picture ``png``."""
    title = "The served verdict: a bag of five pipelines"
    if not doc:
        return Section(title, missing=["no bag figures: run bench/verdict_bag.py (seconds, after bench/shift_nested.py for fold seeds 0..9)"])
    sizes = doc["by_bag_size"]
    types = list(sizes["1"]["per_type"])
    rows = [["pipelines averaged", "sets of fold seeds", "score", "gain over its members", "AUROC", "ECE"] + [SHORT.get(t, t) for t in types]]
    for B, r in sizes.items():
        g = r["gain_over_members"]
        rows.append([B, str(r["sets"]), f"{r['score']['mean']:.2f} +- {r['score']['sd']:.2f}",
                     "" if B == "1" else f"{g['mean']:+.2f} +- {g['sd']:.2f} (better in {g['sets_better']})",
                     f"{r['auroc']['mean']:.3f}", f"{r['ece']['mean']:.3f}"] + [f"{r['per_type'][t]['mean']:.1f}" for t in types])
    halves = "; ".join(
        f"{name}: {h['bag']['score']:.2f} against {h['single_mean_score']:.2f} for the single pipeline "
        f"(+{h['paired_over_record_draws']['point']:.2f}, 5-95 % over record draws {h['paired_over_record_draws']['p5']:+.2f} to "
        f"{h['paired_over_record_draws']['p95']:+.2f}), on {h['new_set_249']['records']} new alarms "
        f"{h['new_set_249']['score']['p5']:.1f}-{h['new_set_249']['score']['p95']:.1f}, the goal of {doc['goal']:.0f} in "
        f"{100 * h['new_set_249']['share_at_or_above_goal']:.0f} % of draws" for name, h in doc["disjoint_five_bags"].items())
    text = ("The service publishes the mean of five whole verdict pipelines (the procedure above, step for step), each fitted on "
            "the records outside one of the registry's five folds; the single pipeline answers when the bag fails or would be late. "
            "Nested: a record's verdicts of 10 fold seeds come from 10 pipelines that never saw it, each fitted on a different "
            "~400 of the other records, and their mean over B of the seeds is what a bag of B such pipelines publishes. The table "
            "gives every B over every set of B fold seeds; the served bag has B = 5. The two disjoint bags of five: " + halves + ".")
    return Section(title, text, _figure(png, out_dir, "verdict_bag"), f"{doc['command']}, {date}", rows)

