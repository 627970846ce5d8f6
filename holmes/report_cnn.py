"""The report's sections on the raw-waveform CNNs: every recipe tried on one zoo member (bench/cnn_ideas.py) and every
way the strongest were put into the served verdict (bench/cnn_served.py, bench/cnn_residual.py), so a reader sees what
was tried and why the served verdict has no CNN in it.

Like ``holmes.report_verdict``, the functions take the benchmark JSON already read and dated, so they can be built from
any results folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .report_render import Section

# bench/cnn_ideas.py's runs on cnn-ecgpulse-w24-d2, oldest first; a variant in several runs reproduces its first figures
IDEAS = ("cnn_ideas", "cnn_ideas_native_hybrid", "cnn_ideas_typed_ssl", "cnn_ideas_combined", "cnn_ideas_masked", "cnn_ideas_distill")
# the paired tests in the served verdict: (JSON name, fold seeds)
TESTS = (("cnn_served", "0..4"), ("cnn_served_seeds5to9", "5..9"), ("cnn_served_distill", "0..4"),
         ("cnn_served_distill_seeds5to9", "5..9"), ("cnn_residual", "0..4"), ("cnn_residual_seeds5to9", "5..9"),
         ("cnn_residual_distill", "0..4"))


def recipes(ideas: list[tuple[str, dict | None, str]]) -> dict[str, dict]:
    """{variant: {"auroc", "vote", "vote_sd", "typed", "typed_sd" (None where not measured), "run", "date"}} over the runs
    ``ideas`` (name, JSON, date) of one member, the first run of each variant; ``"features-vote"`` / ``"features-typed"``
    the feature models alone (their nested AUROC and score)."""
    out: dict[str, dict] = {}
    for name, doc, date in ideas:
        if not doc:
            continue
        for v, row in doc["variants"].items():
            if v in out:
                continue
            typed = row.get("stacked_with_features_typed")
            out[v] = {"auroc": row["auroc"], "vote": row["stacked_with_features_vote"]["score"],
                      "vote_sd": row["stacked_with_features_vote"]["score_sd"], "typed": typed["score"] if typed else None,
                      "typed_sd": typed["score_sd"] if typed else None, "run": name, "date": date}
        for ref, key in (("features-vote", "features_vote_alone"), ("features-typed", "features_typed_alone")):
            if key in doc and ref not in out:
                r = doc[key]
                out[ref] = {"auroc": r["auroc"], "vote": r["score"] if ref == "features-vote" else None,
                            "vote_sd": r["score_sd"] if ref == "features-vote" else None,
                            "typed": r["score"] if ref == "features-typed" else None,
                            "typed_sd": r["score_sd"] if ref == "features-typed" else None, "run": name, "date": date}
    return out


def served_tests(tests: list[tuple[str, str, dict | None, str]]) -> list[dict]:
    """One row per candidate rule of each paired test (name, fold seeds, JSON, date): what it adds to its reference, the
    served verdict (the JSON's first rule), over the fold seeds."""
    rows = []
    for name, seeds, doc, date in tests:
        if not doc:
            continue
        rules = list(doc["summary"])
        for rule in rules[1:]:
            d = doc["summary"][rule]["minus_served"]
            if name.startswith("cnn_residual"):
                rule = "residual CNN, " + ("encoder pre-trained by feature distillation" if doc.get("encoder") == "distill" else "fresh encoder")
            rows.append({"test": rule, "bench": name, "seeds": seeds, "reference": rules[0],
                         "reference_score": doc["summary"][rules[0]]["score"]["mean"], "mean": d["mean"], "sd": d["sd"],
                         "better": d["seeds_better"], "of": len(d["per_seed"]), "date": date})
    return rows


def _plot(out_dir: Path, rec: dict, tests: list[dict]) -> str:
    from .report import _plt, _save

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.25]})
    names = sorted((v for v in rec if not v.startswith("features-")), key=lambda v: rec[v]["auroc"])
    a.barh(np.arange(len(names)), [rec[v]["auroc"] for v in names], color="C0")
    a.set_yticks(np.arange(len(names)), names, fontsize=8)
    for ref, colour, ls in (("features-vote", "C1", ":"), ("features-typed", "C2", "--")):
        if ref in rec:
            a.axvline(rec[ref]["auroc"], color=colour, ls=ls, label=f"{ref} {rec[ref]['auroc']:.3f}")
    a.set_xlim(0.78, 0.98)
    a.set_xlabel("AUROC, the CNN alone (zoo folds)")
    a.set_title("recipes tried (bench/cnn_ideas.py)")
    a.legend(loc="lower right", fontsize=8)
    y = np.arange(len(tests))
    b.errorbar([t["mean"] for t in tests], y, xerr=[t["sd"] for t in tests], fmt="o", color="C3", capsize=3)
    b.axvline(0.0, color="k", lw=1)
    b.set_yticks(y, [f"{_short(t['test'])}, seeds {t['seeds']}" for t in tests], fontsize=8)
    b.invert_yaxis()
    b.set_xlabel("minus the served verdict (paired, mean +- sd over fold seeds)")
    b.set_title("in the served verdict (nested)")
    return _save(fig, out_dir, "cnn_tried")


def _short(test: str) -> str:
    """A candidate's name for the picture: "served + X CNN (w chosen inside) + gate" -> "X mixed in", and the like."""
    if test.startswith("served + "):
        cnn = test[len("served + "):].split(" CNN")[0]
        return f"{cnn}, VT only" if "VT alarms only" in test else f"{cnn} mixed in"
    return test.replace("encoder pre-trained by feature distillation", "distilled encoder")


def cnn_members(out_dir: Path, ideas: list[tuple[str, dict | None, str]], tests: list[tuple[str, str, dict | None, str]]) -> list[Section]:
    """Two sections: the recipes tried (table and picture) and the paired tests in the served verdict."""
    rec = recipes(ideas)
    rows = served_tests(tests)
    title = "Raw-waveform CNNs: recipes tried"
    if not rec:
        return [Section(title, missing=["no CNN recipe figures: run bench/cnn_ideas.py"])]

    def fmt(v, sd):
        return "-" if v is None else f"{v:.2f} +- {sd:.2f}"

    table = [["recipe", "AUROC alone", "stacked with features-vote", "stacked with features-typed", "run"]]
    table += [[v, f"{r['auroc']:.3f}", fmt(r["vote"], r["vote_sd"]), fmt(r["typed"], r["typed_sd"]), r["run"]]
              for v, r in sorted(rec.items(), key=lambda kv: -kv[1]["auroc"])]
    cnns = [v for v in rec if not v.startswith("features-")]
    best = max(cnns, key=lambda v: rec[v]["auroc"])
    above = [f for f in ("features-vote", "features-typed") if f in rec and rec[f]["auroc"] > rec[best]["auroc"]]
    text = (f"{len(cnns)} recipes of one zoo CNN (cnn-ecgpulse-w24-d2) on the zoo's folds, each alone and stacked with a "
            f"feature model (nested, 5 fold seeds; feature rows: the model alone). The strongest, {best}, reaches AUROC "
            f"{rec[best]['auroc']:.3f}" + (f", under {' and '.join(above)} alone." if above else "."))
    first = Section(title, text, _plot(out_dir, rec, rows), "bench/cnn_ideas.py, " + ", ".join(sorted({r["date"][:10] for r in rec.values()})),
                    table)
    title2 = "Raw-waveform CNNs in the served verdict"
    if not rows:
        return [first, Section(title2, missing=["no paired test of a CNN in the served verdict: run bench/cnn_served.py"])]
    kept = [r for r in rows if r["mean"] > 0 and r["better"] >= 4]
    sets = {}
    for r in rows:
        sets.setdefault(r["test"], []).append(r)
    passing = sorted(t for t, rs in sets.items() if len({r["seeds"] for r in rs}) >= 2 and all(r in kept for r in rs))
    table2 = [["candidate", "fold seeds", "reference score", "minus reference", "seeds better"]]
    table2 += [[r["test"], r["seeds"], f"{r['reference_score']:.2f}", f"{r['mean']:+.2f} +- {r['sd']:.2f}", f"{r['better']}/{r['of']}"] for r in rows]
    refs = sorted({f"{r['reference']} ({r['bench'].split('_seeds')[0].split('_distill')[0]})" for r in rows})
    text2 = (f"Each candidate paired against the served verdict on the same outer folds ({'; '.join(refs)}), its weight "
             f"(or residual) learned on inner folds only. A candidate is served only if it gains in the mean and on at least 4 of 5 fold seeds on both "
             f"fold-seed sets; {len(kept)} of {len(rows)} rows clear that on their own set, "
             + (f"and on both sets: {', '.join(passing)}." if passing else
                "no candidate on both sets (a candidate not run on the second set failed the first): the served verdict has no CNN in it."))
    src = "bench/cnn_served.py, bench/cnn_residual.py, " + ", ".join(sorted({r["date"][:10] for r in rows}))
    return [first, Section(title2, text2, None, src, table2)]
