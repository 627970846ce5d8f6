"""Does the strongest CNN add to the served verdict? Its weight in the verdict chosen on inner folds, scored on outer folds.

    .venv/bin/python bench/cnn_served.py [--seeds 5] [--first-seed 0] [--cnn bench/results/cnn_ideas_combined.json]

The CNN is ``bench/cnn_ideas.py``'s ``combined`` variant (cnn-ecgpulse-w24-d2 with per-alarm-type heads, the 99
features in its head, no cost weight: AUROC 0.919 alone, the best CNN tried); its out-of-fold probabilities on the zoo's
5 folds are read from that bench's JSON. Written before the first run (the plan, nothing tuned after):

Per outer fold (5 folds x each fold seed, ``models.data.cv_folds``):

1. the served procedure as in ``bench/definition_gates.py``: K and the map chosen on the inner folds, the inner
   out-of-fold probabilities calibrated on the other inner folds, the outer test part through the chosen map;
2. the CNN's probabilities Platt-calibrated on the outer training part (``models.calibration``);
3. the verdict mix ``(1 - w) * served + w * CNN``, w among 0, 0.1, ..., 0.5 chosen on the inner probabilities by the
   challenge score at the 1/6 cut (ties: the smaller w);
4. the definition gate (``models.definition_gate.fit``, the served margins) fitted on the inner mixed probabilities and
   applied to the outer mixed ones.

Paired against the served verdict with its gate (the same steps with w = 0). Kept (served) only if, on both fold-seed
sets (0..4 and 5..9), the paired difference is positive in the mean and on at least 4 of 5 fold seeds.

A caveat the design cannot remove: the CNN's out-of-fold probabilities come from the zoo's folds (fold seed 0). A
record's own probability never saw its label, but the model that gave it saw other records that fall in the same outer
test part under another fold seed.

Result (one run per fold-seed set, 9 s each): **not kept**. Seeds 0..4: served verdict + gate 81.30 +/- 2.15; with the
CNN 80.76 +/- 2.17, -0.54 +/- 0.46, better on 0/5 seeds (w chosen: 0 on 11 of 25 outer folds, 0.2 on 8). Seeds 5..9:
81.02 vs 80.52, -0.50 +/- 0.43, 0/5. The CNN's ECE pulls the mix to 0.044 and bradycardia drops 1.3-2.9 points.

A second rule, written on 2026-12-05 before its first run, after the per-type AUROCs of the two (the CNN is weaker on
every type, VT 0.848 against the served 0.924, but correlates 0.68 with it there, the least after tachycardia):
**the CNN on VT alarms only**. Step 3 mixes only the VT records, w among the same weights chosen on the inner VT
records by their challenge score at 1/6 (ties: the smaller w); other types keep the served verdict; step 4 as above.
Same keep rule. The first rule's figures must come out as before.

Its run (both fold-seed sets, 9 s each; the first rule's figures identical to the earlier run): **not kept**. Seeds
0..4: 80.94 +/- 2.03, -0.36 +/- 0.43, better on 0/5 (w 0 chosen on 15 of 25 outer folds); seeds 5..9: 80.97 +/- 1.99,
-0.05 +/- 0.23, 2/5 (w 0 on 14). On VT the CNN adds nothing the inner folds can find and the outer folds reward.

The same two rules for ``bench/cnn_ideas.py``'s ``combined-distill`` (its encoder first pre-trained to compute the
99 features of the unlabelled minutes; AUROC 0.937 alone), which passed that bench's rule on 2026-12-06:
``--cnn bench/results/cnn_ideas_distill.json --variant combined-distill --out bench/results/cnn_served_distill.json``
(and ``_seeds5to9.json`` with ``--first-seed 5``). **Not kept**: mixed -0.20 +/- 1.09 (2/5) and +0.05 +/- 0.94 (3/5), on
VT only +0.11 +/- 0.51 (2/5) and +0.26 +/- 0.76 (4/5). Closer than combined (the inner folds give it weight: w = 0 on 6
of 50 outer folds, against 21 for combined), still not a gain the outer folds confirm.

Writes bench/results/cnn_served.json (per rule: score, AUROC, ECE, TPR, TNR, per type, mean and spread; the weights
chosen) and cnn_served.png (the paired differences).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from feature_sets import _row, paired_plot, print_rules, summarize_rules  # noqa: E402
from definition_gates import load_bench, results_path, served_folds  # noqa: E402
from models import definition_gate as dg  # noqa: E402
from models.calibration import Calibrator  # noqa: E402
from models.metrics import challenge_score  # noqa: E402

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
SERVED = "served verdict + gate"
MIXED = "served + {} CNN (w chosen inside) + gate"
VT_ONLY = "served + {} CNN on VT alarms only (w chosen inside on VT) + gate"
VT = "Ventricular_Tachycardia"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--cnn", default=str(ROOT / "bench" / "results" / "cnn_ideas_combined.json"))
    ap.add_argument("--variant", default="combined")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    out_path = results_path("cnn_served", args.out, args.seeds, args.first_seed)

    b = load_bench(args.data, args.seeds, args.first_seed)
    T, y, n, seeds = b.T, b.y, b.n, b.seeds
    doc = json.loads(Path(args.cnn).read_text())
    pos = {r: i for i, r in enumerate(doc["records"])}
    cnn = np.array(doc["variants"][args.variant]["oof"])[[pos[r] for r in b.names]]
    rate = dg.readings(b.F["batch@0"], T)
    mixed, vt_only = MIXED.format(args.variant), VT_ONLY.format(args.variant)

    per_seed: dict[str, list] = {}
    chosen = []
    for s in seeds:
        probs = {SERVED: np.zeros(n), mixed: np.zeros(n), vt_only: np.zeros(n)}
        for k, tr, te, K, p_inner, p_te in served_folds(b, s):
            platt = Calibrator.fit("platt", cnn[tr], y[tr])
            c_tr, c_te = platt.transform(cnn[tr]), platt.transform(cnn[te])
            scores = {w: challenge_score(y[tr], ((1 - w) * p_inner + w * c_tr >= dg.CUT).astype(int)) for w in WEIGHTS}
            w = min(WEIGHTS, key=lambda v: (-scores[v], v))
            vt_in, vt_te = T[tr] == VT, T[te] == VT
            vt_scores = {v: challenge_score(y[tr][vt_in], ((1 - v) * p_inner[vt_in] + v * c_tr[vt_in] >= dg.CUT).astype(int)) for v in WEIGHTS}
            w_vt = min(WEIGHTS, key=lambda v: (-vt_scores[v], v))
            for name, ww, on_in, on_te in ((SERVED, 0.0, True, True), (mixed, w, True, True), (vt_only, w_vt, vt_in, vt_te)):
                m_in = np.where(on_in, (1 - ww) * p_inner + ww * c_tr, p_inner)
                m_te = np.where(on_te, (1 - ww) * p_te + ww * c_te, p_te)
                gate = dg.fit(m_in, y[tr], T[tr], rate[tr], dg.MARGINS)
                probs[name][te], _ = gate.apply(m_te, rate[te], T[te])
            chosen.append({"seed": s, "fold": k, "w": w, "inner_scores": {str(v): round(sc, 4) for v, sc in scores.items()}, "w_vt": w_vt})
        for name, p in probs.items():
            per_seed.setdefault(name, []).append(_row(y, p, T))

    summary = summarize_rules(per_seed, SERVED, "minus_served")
    out = {"command": "bench/cnn_served.py " + " ".join(sys.argv[1:]), "records": n, "fold_seeds": args.seeds, "first_seed": args.first_seed,
           "cnn": {"file": Path(args.cnn).name, "variant": args.variant, "auroc_alone": doc["variants"][args.variant]["auroc"]},
           "weights": list(WEIGHTS), "weights_chosen": dict(Counter(str(c["w"]) for c in chosen)),
           "weights_chosen_vt_only": dict(Counter(str(c["w_vt"]) for c in chosen)),
           "fold_predictions": b.path.name, "summary": summary, "per_fold": chosen, "per_seed": per_seed}
    out_path.write_text(json.dumps(out, indent=1))
    paired_plot(out, out_path.with_suffix(".png"), f"the {args.variant} CNN in the served verdict", 2.8)
    print_rules(summary, 52)
    print(f"weights chosen per outer fold {out['weights_chosen']}; VT only {out['weights_chosen_vt_only']}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
