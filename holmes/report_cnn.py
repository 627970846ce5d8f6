"""The report's sections on the raw-waveform CNNs: every recipe tried on one zoo member (bench/cnn_ideas.py) and every
way the strongest were put into the served verdict (bench/cnn_served.py, bench/cnn_residual.py), so a reader sees what
was tried and why the served verdict has no CNN in it.

Like ``holmes.report_verdict``, the functions take the benchmark JSON already read and dated, so they can be built from
any results folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .report_render import Section, plt_agg, save_figure

# bench/cnn_ideas.py's runs on one zoo member, oldest first (cnn_ideas_all_w16_d2 is another member's)
IDEAS = ("cnn_ideas", "cnn_ideas_native_hybrid", "cnn_ideas_typed_ssl", "cnn_ideas_combined", "cnn_ideas_masked", "cnn_ideas_distill")
# the paired tests of a CNN in the served verdict
TESTS = ("cnn_served", "cnn_served_seeds5to9", "cnn_served_distill", "cnn_served_distill_seeds5to9", "cnn_residual",
         "cnn_residual_seeds5to9", "cnn_residual_distill")
FIELDS = ("auroc", "vote", "vote_sd", "typed", "typed_sd")
REFERENCES = {"bench/cnn_served.py": "the verdict with its definition gate, before the VT re-scorer and the second bradycardia gate",
              "bench/cnn_residual.py": "the served single pipeline (both gates, the VT re-scorer)"}
MAX_ECE = 0.05  # bench/cnn_residual.py's rule also keeps ECE at most this and AUROC not lower


def recipes(ideas: list[tuple[str, dict | None, str]]) -> tuple[str, dict[str, dict]]:
    """(member, {recipe: {"auroc", "vote", "vote_sd", "typed", "typed_sd" (None where not measured), "runs", "dates"}})
    over the runs ``ideas`` (name, JSON, date) of one member: each field from the first run that measured it (a variant in
    several runs reproduces its figures). ``"features-vote"`` / ``"features-typed"``: the feature models alone, their
    nested AUROC and score (in their own column). A run of another member is an error."""
    member, out = None, {}

    def merge(name: str, values: dict, run: str, date: str) -> None:
        row = out.setdefault(name, {**{f: None for f in FIELDS}, "runs": [], "dates": []})
        new = [f for f in FIELDS if row[f] is None and values.get(f) is not None]
        for f in new:
            row[f] = values[f]
        if new:
            row["runs"].append(run)
            row["dates"].append(date)

    for run, doc, date in ideas:
        if not doc:
            continue
        if member not in (None, doc["member"]):
            raise ValueError(f"recipes: runs of two members ({member}, {doc['member']} in {run}); the table compares one")
        member = doc["member"]
        for v, row in doc["variants"].items():
            sv, st = row["stacked_with_features_vote"], row.get("stacked_with_features_typed") or {}
            merge(v, {"auroc": row["auroc"], "vote": sv["score"], "vote_sd": sv["score_sd"], "typed": st.get("score"),
                         "typed_sd": st.get("score_sd")}, run, date)
        for ref, key, col in (("features-vote", "features_vote_alone", "vote"), ("features-typed", "features_typed_alone", "typed")):
            if key in doc:
                r = doc[key]
                merge(ref, {"auroc": r["auroc"], col: r["score"], f"{col}_sd": r["score_sd"]}, run, date)
    return member or "", out


def _seeds(doc: dict) -> str:
    return f"{doc['first_seed']}..{doc['first_seed'] + doc['fold_seeds'] - 1}"


def served_tests(tests: list[tuple[str, dict | None, str]]) -> list[dict]:
    """One row per candidate rule of each paired test (name, JSON, date): what it adds to its reference (the JSON's first
    rule) over the fold seeds, and whether it passes its bench's keep rule on that fold-seed set (``passes``). A row's
    ``candidate`` names it across fold-seed sets: the bench, and the rule (bench/cnn_served.py, whose rules name the CNN)
    or the member and encoder (bench/cnn_residual.py)."""
    rows = []
    for name, doc, date in tests:
        if not doc:
            continue
        bench = doc["command"].split()[0]
        rules = list(doc["summary"])
        ref = doc["summary"][rules[0]]
        for rule in rules[1:]:
            sm = doc["summary"][rule]
            d = sm["minus_served"]
            passes = d["mean"] > 0 and d["seeds_better"] * 5 >= 4 * len(d["per_seed"])
            if bench == "bench/cnn_residual.py":
                m = doc["member"]
                rule = (f"residual cnn-{m['inputs']}-w{m['width']}-d{m['depth']}, "
                        + ("encoder pre-trained by feature distillation" if doc.get("encoder") == "distill" else
                           f"{doc.get('encoder') or 'fresh'} encoder"))
                passes = passes and sm["auroc"]["mean"] >= ref["auroc"]["mean"] and sm["ece"]["mean"] <= MAX_ECE
            rows.append({"candidate": rule, "bench": bench, "run": name, "seeds": _seeds(doc), "reference": rules[0],
                         "reference_score": ref["score"]["mean"], "mean": d["mean"], "sd": d["sd"], "better": d["seeds_better"],
                         "of": len(d["per_seed"]), "passes": passes, "date": date})
    return rows


def verdict_on_serving(rows: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """(candidates that pass on at least two different fold-seed sets and fail on none; candidates measured on one set
    only that passed it; those measured on one set only that failed it)."""
    sets: dict[tuple, list[dict]] = {}
    for r in rows:
        sets.setdefault((r["bench"], r["candidate"]), []).append(r)
    both, pending, failed_one = [], [], []
    for (_, cand), rs in sets.items():
        seeds = {r["seeds"] for r in rs}
        if len(seeds) >= 2:
            if all(r["passes"] for r in rs):
                both.append(cand)
        elif all(r["passes"] for r in rs):
            pending.append(cand)
        else:
            failed_one.append(cand)
    return sorted(both), sorted(pending), sorted(failed_one)


def _plot(out_dir: Path, rec: dict, tests: list[dict]) -> str:
    plt = plt_agg()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.25]})
    names = sorted((v for v in rec if not v.startswith("features-")), key=lambda v: rec[v]["auroc"])
    a.barh(np.arange(len(names)), [rec[v]["auroc"] for v in names], color="C0")
    a.set_yticks(np.arange(len(names)), names, fontsize=8)
    for ref, colour, ls in (("features-vote", "C1", ":"), ("features-typed", "C2", "--")):
        if ref in rec:
            a.axvline(rec[ref]["auroc"], color=colour, ls=ls, label=f"{ref} {rec[ref]['auroc']:.3f}")
    lo = min(rec[v]["auroc"] for v in rec)
    a.set_xlim(min(0.78, lo - 0.02), 0.98)
    a.set_xlabel("AUROC, the CNN alone (zoo folds)")
    a.set_title("recipes tried (bench/cnn_ideas.py)")
    a.legend(loc="lower right", fontsize=8)
    y = np.arange(len(tests))
    b.errorbar([t["mean"] for t in tests], y, xerr=[t["sd"] for t in tests], fmt="o", color="C3", capsize=3)
    b.axvline(0.0, color="k", lw=1)
    b.set_yticks(y, [f"{_short(t['candidate'])}, seeds {t['seeds']}" for t in tests], fontsize=8)
    b.invert_yaxis()
    b.set_xlabel("minus its reference (paired, mean +- sd over fold seeds)")
    b.set_title("in the served verdict (nested)")
    return save_figure(fig, out_dir, "cnn_tried")


def _short(candidate: str) -> str:
    """A candidate's name for the picture: "served + X CNN (w chosen inside) + gate" -> "X mixed in", and the like."""
    if candidate.startswith("served + "):
        cnn = candidate[len("served + "):].split(" CNN")[0]
        return f"{cnn}, VT only" if "VT alarms only" in candidate else f"{cnn} mixed in"
    return candidate.replace("encoder pre-trained by feature distillation", "distilled encoder")


def _fmt(v, sd) -> str:
    return "-" if v is None else f"{v:.2f} +- {sd:.2f}"


def cnn_members(out_dir: Path, ideas: list[tuple[str, dict | None, str]], tests: list[tuple[str, dict | None, str]]) -> list[Section]:
    """Two sections: the recipes tried (table and picture) and the paired tests in the served verdict."""
    member, rec = recipes(ideas)
    rows = served_tests(tests)
    title = "Raw-waveform CNNs: recipes tried"
    if not rec:
        return [Section(title, missing=["no CNN recipe figures: run bench/cnn_ideas.py"])]
    table = [["recipe", "AUROC alone", "nested score: stacked with features-vote (its row: alone)",
              "stacked with features-typed (its row: alone)", "runs"]]
    table += [[v, f"{r['auroc']:.3f}", _fmt(r["vote"], r["vote_sd"]), _fmt(r["typed"], r["typed_sd"]), ", ".join(r["runs"])]
              for v, r in sorted(rec.items(), key=lambda kv: -kv[1]["auroc"])]
    cnns = [v for v in rec if not v.startswith("features-")]
    best = max(cnns, key=lambda v: rec[v]["auroc"])
    above = [f for f in ("features-vote", "features-typed") if f in rec and rec[f]["auroc"] > rec[best]["auroc"]]
    beat_typed = [v for v in cnns if rec[v]["typed"] is not None and "features-typed" in rec
                  and rec[v]["typed"] > rec["features-typed"]["typed"]]
    text = (f"{len(cnns)} recipes of one zoo CNN ({member}) on the zoo's folds, each alone and stacked with a feature model "
            f"(the composer's nested stacking rule over fold seeds). The strongest, {best}, reaches AUROC {rec[best]['auroc']:.3f}"
            + (f", under {' and '.join(above)} alone." if above else ".")
            + "".join(f" Stacked with features-typed, {v} reads {_fmt(rec[v]['typed'], rec[v]['typed_sd'])} against "
                      f"features-typed alone {_fmt(rec['features-typed']['typed'], rec['features-typed']['typed_sd'])}."
                      for v in beat_typed)
            + " These scores come from the zoo's folds and the feature-stacking harness: they do not compare with the "
              "served verdict's figures in the next section.")
    first = Section(title, text, _plot(out_dir, rec, rows), "bench/cnn_ideas.py, "
                    + ", ".join(sorted({d[:10] for r in rec.values() for d in r["dates"]})), table)
    title2 = "Raw-waveform CNNs in the served verdict"
    if not rows:
        return [first, Section(title2, missing=["no paired test of a CNN in the served verdict: run bench/cnn_served.py"])]
    both, pending, failed_one = verdict_on_serving(rows)
    table2 = [["candidate", "fold seeds", "reference", "reference score", "minus reference", "seeds better", "passes on this set"]]
    table2 += [[r["candidate"], r["seeds"], f"{r['bench']}: {r['reference']}", f"{r['reference_score']:.2f}",
                f"{r['mean']:+.2f} +- {r['sd']:.2f}", f"{r['better']}/{r['of']}", "yes" if r["passes"] else "no"] for r in rows]
    refs = "; ".join(f"{b}'s is {REFERENCES.get(b, 'its first rule')}" for b in sorted({r["bench"] for r in rows}))
    said = (f"Each candidate is paired against a reference on the same outer folds, its weight (or residual) learned on "
            f"inner folds only. The references differ by bench: {refs}; neither is the bag of five the service publishes. "
            f"A candidate is served only if, on two fold-seed sets, it gains in the mean and on at least 4 of 5 fold seeds "
            f"(bench/cnn_residual.py also: AUROC not lower, ECE <= {MAX_ECE}). {sum(r['passes'] for r in rows)} of "
            f"{len(rows)} rows pass on their own set. ")
    if both:
        said += f"Passing on two sets: {', '.join(both)}."
    else:
        said += "No candidate passes on two sets"
        said += (f"; measured on one set only and passing it, so not yet decided: {', '.join(pending)}." if pending else
                 (f" ({len(failed_one)} measured on one set only failed it)" if failed_one else "")
                 + ": the served verdict has no CNN in it.")
    src = "bench/cnn_served.py, bench/cnn_residual.py, " + ", ".join(sorted({r["date"][:10] for r in rows}))
    return [first, Section(title2, said, None, src, table2)]
