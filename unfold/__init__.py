"""unfold: the UnfoldML cascade, staged binary classifiers with cheap-to-costly ladders and tuned gates.

Stages (``unfold.evaluate.default_stages``): stage 1 "life-threatening arrhythmia present" (every window,
label: true alarm); stage 2 "ventricular arrhythmia" (ventricular alarm types only, label: a true VT/VF;
for other alarm types a stage-1 ICK1 is final). Each stage's ladder: a small forest on quick features of one
ECG lead and one pulse signal (``unfold.lead``), a feature model on all signals (``models.feature_models``), the HOLMES ensemble
(an injected scorer: the Ray Serve service in the stream, the same ensemble in process offline): a registry ensemble
row, or a row of the serving plan (``holmes cascade fit --plan deploy/plan.json --ensemble floor``), which the
served cascade then asks the service for by name.

Public surface:
    Gate, ICK0, IDK, ICK1                 three-way gates (validated cut-offs)
    Cascade, Stage, Rung, CascadeResult   fit (gates tuned on OOF under per-stage budgets and a bound on missed true alarms) / predict / run
    CostTable                             measured ms and MACs per compute component
    LeadModel, quick_features             the cheap rung (one ECG lead + one pulse, low sample rate)
    EnsembleRef                           the costly rung: a registry ensemble row or a serving plan's row
    fit_cascade, FittedCascade, save, load
    CascadeScorer                         the ``cascade`` stream scorer (``unfold.scorer`` registers it)
"""

from .cascade import Cascade, CascadeResult, OfflineRunner, Rung, Stage
from .costs import CostTable
from .ensemble import EnsembleRef
from .gates import ICK0, ICK1, IDK, Gate
from .lead import LEAD_FEATURES, LeadModel, quick_features
from .persist import FittedCascade, load, save

__all__ = ["Cascade", "CascadeResult", "OfflineRunner", "Rung", "Stage", "CostTable", "EnsembleRef", "Gate", "ICK0", "ICK1", "IDK",
           "LEAD_FEATURES", "LeadModel", "quick_features", "FittedCascade", "load", "save", "fit_cascade", "CascadeScorer"]


def __getattr__(name):  # heavier pieces on demand (scikit-learn fitting, the stream scorer)
    if name == "fit_cascade":
        from .fit import fit_cascade

        return fit_cascade
    if name == "CascadeScorer":
        from .scorer import CascadeScorer

        return CascadeScorer
    raise AttributeError(name)
