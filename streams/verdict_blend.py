"""The verdict lane's blend: the plan row's answer on an alarm window averaged with the ``incremental`` scorer's on the
patient's streamed state (``VerdictBlend``), optionally over the windows before it (``models.verdict_shift``) and capped by
the alarm definitions' gate (``models.definition_gate``); with a bag (``models.verdict_bag``), the mean of its pipelines.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from models.errors import InvalidFieldError
from models.verdict_shift import NAME as SHIFT_NAME  # among a shifted verdict's models
from models.vt_spectral import vt_alarm_readings

from .scorer import ScoreOut, WindowBatch

if TYPE_CHECKING:
    from .incremental_scorer import IncrementalScorer

log = logging.getLogger(__name__)


SHIFT_ROW_SKIPPED = "verdict_shift_row_skipped: deadline"  # the row answered the alarm window alone, to keep the deadline
# the row's call with earlier windows may take at most this share of the time left to the earliest deadline (the cost
# per window is a moving average over calls, fixed costs included, so it overestimates large calls: 0.5 skipped 45 of 50
# verdicts in a 1,000-bed burst, bench/results/serve_beds_shift_1000_burst_share05.json)
SHIFT_BUDGET_SHARE = 1.0
ROW_FAILED = "verdict_row_failed"  # the plan row raised; the bag answered (only ever on a verdict the bag replaced)
BAG_SKIPPED = "verdict_bag_skipped: deadline"  # the single pipeline's verdict went out: the bag would have been late
BAG_BUDGET_SHARE = 1.0  # the bag may take at most this share of the time left to the earliest deadline (predicted) ...
BAG_MARGIN_S = 0.2  # ... less this margin: a bagged verdict predicted to land within 200 ms of its deadline is not worth it
BLEND_CUT = 1.0 / 6.0  # a calibrated probability's cost-optimal cut for the challenge's 5:1 cost of a missed true alarm


class VerdictBlend:
    """Verdicts as the mean of two calibrated probabilities: the service's plan row on the alarm window, and
    ``features-typed-inc`` on the patient's incremental state (the routine lane's own scorer). An alarm window that
    continues the patient's state (one hop after its last window, or that window again) advances it as any window
    does, so the next routine window is a hop, not a restart; any other (an alarm that came after later windows were
    scored, an alarm time off the hop grid, a second alarm of the patient in one batch) is scored aside, as a stream
    that begins at the window's start, and leaves the state alone. The verdict is "true" at a mean >= ``cut`` (1/6,
    the 5:1 cost's break-even).

    Why: on nested, record-grouped CV over 5 fold seeds (``bench/feature_sets.py``) the mean of features-typed on the
    window's batch features and on the streamed incremental features scores 79.11 +/- 1.41 against 77.99 +/- 1.99
    for the batch model alone (+1.13 +/- 0.89, better on 5/5 seeds).

    With a ``shift`` (``models.verdict_shift``, K > 0) the incremental side is also scored on the patient's windows
    ending 1..K s before the alarm window (from the features it kept of those windows: no window featurized twice), and
    the row on the windows ending 1..``k_row`` s before it (0 in the served fit: the service scores the alarm windows
    alone; with k_row > 0 the consumer attaches those windows, ``WindowBatch.earlier``, and they go in the same call);
    each side is averaged over the windows it has and the mean passed through the shift's map. Nested CV
    (``bench/shift_nested.py``, K and map chosen on inner folds): the served rule (row on the alarm window) +0.96 +/- 1.00
    over the unshifted blend, both sides averaged +1.42 +/- 1.13 (paired -0.47 +/- 1.33: within the noise). When the
    row's call with earlier windows (k_row > 0) would not end before the earliest deadline (at the row's recent cost per
    window), the row answers the alarm windows alone and those verdicts say so (``SHIFT_ROW_SKIPPED``, degraded).

    With a ``gate`` (``models.definition_gate``, fitted with the shift and kept in its file) a verdict whose alarm
    window misses its alarm's definition by the gate's margin (e.g. a VT alarm whose fastest 5 beats on both ECG leads
    are under 80 bpm) is capped at the gate's probability, below the cut, and its models name the gate. Nested CV
    (``bench/definition_gates.py``, the gate chosen on inner folds with K and the map): +1.23 +/- 0.24 over the served
    shift, 5/5 fold seeds, no true alarm gated on an outer fold. If the gate fails, the verdicts go out ungated.
    After the gate, the shift's VT re-scorer (``models.vt_spectral``, when the shift file has one) replaces each VT
    verdict by its weighing of that verdict against the alarm window's spectral purity, and its models name it
    (``bench/vt_spectral.py``: +0.79 +/- 1.11 and +1.20 +/- 1.22 on the two fold-seed sets); it fails with the gate.

    With a ``bag`` (``models.verdict_bag``: 5 whole pipelines of this procedure, each fitted on 80 % of the records) the
    published verdict of every alarm window whose incremental features the lane holds is the mean of the bag's
    pipelines, computed here from the window's batch features (extracted once, shared with the gate) and the patient's
    kept incremental features; its models then name ``verdict-bag``, the two sides' model, and the gate or the VT
    re-scorer where any member applied them (nested, ``bench/verdict_bag.py``: +1.36 +/- 0.56 over the single
    pipeline, better in 250 of 252 sets of 5 fold seeds). The single pipeline above still answers every alarm: if the
    bag fails its verdicts go out instead (``bag_failures``); if the row fails and the bag answers, the bag's go out
    without waiting for the consumer's retry (``bag_row_failures``). When the bag's call, at its cost measured at start
    (``VerdictBag.warm``) times the ratio of its recent calls' measured to predicted cost, would end less than
    ``BAG_MARGIN_S`` before the earliest deadline of the batch, the single pipeline's verdicts go out, marked
    ``BAG_SKIPPED`` (degraded; ``bag_skipped_deadline``).

    The incremental part runs first, so a service that fails (raises) still leaves each patient's state advanced; the
    consumer's retry then finds the same windows and reads the state as it is. If the incremental part fails, the
    row's answers are published alone (not gated: the gate was fitted on the blend); a window whose row answer is missing keeps the row's (degraded) answer.
    """

    def __init__(self, verdicts, incremental: IncrementalScorer, cut: float = BLEND_CUT, shift=None, gate=None, bag=None):
        if not 0.0 < cut < 1.0:
            raise InvalidFieldError("cut", "must be in (0, 1)", cut)
        self.verdicts, self.incremental, self.cut, self.shift = verdicts, incremental, float(cut), shift
        self.gate = gate  # models.definition_gate.DefinitionGate: caps a verdict whose window misses its alarm's definition
        self.vt_rescorer = None if shift is None or gate is None else shift.vt_rescorer  # fitted after the gate, served with it
        self.rescored = 0  # VT verdicts the re-scorer replaced
        self.gated = 0  # verdicts the gate capped
        self.gate_failures = 0
        # the consumer attaches this many earlier windows to each alarm window for the row (WindowBatch.earlier); the
        # incremental side averages over ``shift.k`` windows from the features it kept
        self.earlier_windows = shift.k_row if shift is not None else 0
        self.inc_earlier = shift.k if shift is not None else 0
        self.bag = bag  # models.verdict_bag.VerdictBag: publishes the mean of its pipelines where it answers
        if bag is not None and hasattr(bag, "warm"):
            bag.warm()  # compiled forests now, not on the first alarm
        self.bagged = 0  # verdicts the bag published
        self.bag_skipped = 0  # verdicts the bag left to the single pipeline to keep the deadline
        self._bag_ratio = 1.0  # measured / predicted cost of the bag's recent calls (this machine's load now)
        self.bag_failures = 0
        self.row_failures = 0  # calls of the row the bag answered without
        need = max(self.inc_earlier, bag.max_k if bag is not None else 0)
        if need > incremental.history:
            incremental.keep_history(need)
        self.name = f"{verdicts.name}+{incremental.name}" + ("+verdict-bag" if bag is not None else "")
        self.row_ms_per_window: float | None = None  # the row's recent cost per window sent (moving average)
        self.shift_row_skipped = 0  # alarm windows whose row answered without their earlier windows (deadline)
        self.failures = 0
        self.aside = 0  # alarm windows scored aside (not continuing their patient's state)
        # the consumer scores a patient's pending routine windows before its alarm window, so the state advances in order
        self.needs_patient_order = True

    def stats(self) -> dict:
        return {"blend_aside": self.aside, "blend_failures": self.failures, "shift_row_skipped": self.shift_row_skipped,
                "verdicts_gated": self.gated, "gate_failures": self.gate_failures, "verdicts_vt_rescored": self.rescored,
                "verdicts_bagged": self.bagged, "bag_failures": self.bag_failures, "bag_row_failures": self.row_failures,
                "bag_skipped_deadline": self.bag_skipped}

    def _gated(self, batch: WindowBatch, out: list[ScoreOut], blended: list[int], features=None, vt=None) -> list[ScoreOut]:
        """``_gate`` on the ``blended`` verdicts (both sides answered: the probability the gate was fitted on; a row's
        answer alone is left as it is) when there is a gate; if it fails, the verdicts go out ungated (counted, logged).
        ``features``, ``vt``: the batch's feature rows and VT readings where the lane has them already."""
        if self.gate is None or not blended:
            return out
        try:
            return self._gate(batch, out, blended, features, vt)
        except Exception as e:
            self.gate_failures += 1
            log.warning("verdict blend: the definition gate failed on %d alarm windows (%s: %s); verdicts go out ungated",
                        len(batch), type(e).__name__, e)
            return out

    def _gate(self, batch: WindowBatch, out: list[ScoreOut], blended: list[int], features=None, vt=None) -> list[ScoreOut]:
        """``out`` with those of the ``blended`` verdicts whose alarm window reads beyond the gate's limit capped (their
        models then name the gate, also when the probability was already under the cap): the readings come from the
        window's batch features (``models.features``; extracted here when the batch does not carry them), the same the
        gate was fitted on."""
        from models.definition_gate import NAME as GATE
        from models.vt_spectral import NAME as RESCORER, gate_and_rescore

        features = batch.features if features is None else features
        p, g, r = gate_and_rescore(self.gate, self.vt_rescorer, [out[i].probability for i in blended], batch.windows[blended],
                                   batch.masks[blended], [batch.alarm_types[i] for i in blended],
                                   None if features is None else np.asarray(features)[blended], None if vt is None else vt[blended])
        out = list(out)
        for i, q, hit, rescored in zip(blended, p, g, r):
            if hit or rescored:
                s = out[i]
                names = s.models + ((GATE,) if hit else ()) + ((RESCORER,) if rescored else ())
                out[i] = ScoreOut(float(q), bool(q >= self.cut), s.stage, names, s.degraded_reason, s.timings_ms)
        self.gated += int(g.sum())
        self.rescored += int(r.sum())
        return out

    def _incremental(self, batch: WindowBatch) -> list[ScoreOut]:
        """The incremental scorer's answers (advancing each continuing patient's state); their feature rows are left in
        ``self._inc_X`` for the bag."""
        inc, out = self.incremental, [None] * len(batch)
        self._inc_X = None
        seen: set[str] = set()
        keep = []
        for p, e in zip(batch.patient_ids, batch.window_end_s):  # the first window of a patient may move its state
            keep.append(p not in seen and (p not in inc.last_end or inc.continues(p, float(e))))
            seen.add(p)
        keep = np.array(keep, dtype=bool)
        for mask, score in ((keep, inc.score), (~keep, inc.score_aside)):
            idx = np.flatnonzero(mask)
            if len(idx):
                for i, s in zip(idx, score(batch.take(idx))):
                    out[i] = s
                X = getattr(inc, "last_features", None)
                if X is not None and len(X) == len(idx):
                    if self._inc_X is None:
                        self._inc_X = np.full((len(batch), X.shape[1]), np.nan)
                    self._inc_X[idx] = X
        self.aside += int((~keep).sum())
        return out

    def _incremental_earlier(self, batch: WindowBatch) -> list[list[float]]:
        """Per window, the incremental model's calibrated probabilities of the patient's earlier windows (newest first)."""
        k, inc = self.inc_earlier, self.incremental
        X = [inc.earlier_features(p, float(e), k) for p, e in zip(batch.patient_ids, batch.window_end_s)]
        if not any(len(x) for x in X):
            return [[] for _ in X]
        p = inc.probabilities(np.vstack(X), [t for x, t in zip(X, batch.alarm_types) for _ in range(len(x))])
        at = np.cumsum([0] + [len(x) for x in X])
        return [[float(v) for v in p[at[i]:at[i + 1]]] for i in range(len(X))]

    def _row_call(self, batch: WindowBatch) -> list[ScoreOut]:
        """The row's answers, timed: ``row_ms_per_window`` follows the service's cost per window sent."""
        t0 = time.perf_counter()
        out = self.verdicts.score(batch)
        ms = (time.perf_counter() - t0) * 1e3 / max(len(batch), 1)
        self.row_ms_per_window = ms if self.row_ms_per_window is None else 0.7 * self.row_ms_per_window + 0.3 * ms
        return out

    def _rows(self, batch: WindowBatch) -> tuple[list[ScoreOut], list[list[float]], bool]:
        """The row's answers on the alarm windows, per window its probabilities of the earlier windows attached, and
        whether those were left out: when the call with them would take (at the service's recent cost per window) more
        than ``SHIFT_BUDGET_SHARE`` of the time left to the earliest deadline, the row answers the alarm windows alone."""
        n = len(batch)
        parts = [(i, e) for i, e in enumerate(batch.earlier or []) if e is not None and len(e[0])] if self.earlier_windows else []
        if not parts:
            return self._row_call(batch), [[] for _ in range(n)], False
        owner = np.array([i for i, e in parts for _ in range(len(e[0]))], dtype=np.int64)
        left_ms = (float(np.min(batch.deadline_unix_s)) - time.time()) * 1e3
        if self.row_ms_per_window is not None and self.row_ms_per_window * (n + len(owner)) > SHIFT_BUDGET_SHARE * left_ms:
            self.shift_row_skipped += n
            return self._row_call(batch), [[] for _ in range(n)], True
        back = np.concatenate([np.arange(1, len(e[0]) + 1) for _, e in parts]) * self.incremental.hop_s
        rows = np.concatenate([np.arange(n), owner])  # each earlier window as a row of its alarm window's patient, type, deadline
        big = WindowBatch([batch.patient_ids[i] for i in rows], np.concatenate([batch.window_end_s, batch.window_end_s[owner] - back]),
                          np.concatenate([batch.windows] + [e[0].astype(batch.windows.dtype) for _, e in parts]),
                          np.concatenate([batch.masks] + [e[1] for _, e in parts]), [batch.alarm_types[i] for i in rows],
                          batch.is_alarm[rows], batch.sample_unix_s[rows], batch.deadline_unix_s[rows])
        out = self._row_call(big)
        earlier: list[list[float]] = [[] for _ in range(n)]
        for i, s in zip(owner, out[n:]):
            if s.probability is not None:
                earlier[i].append(float(s.probability))
        return out[:n], earlier, False

    def score(self, batch: WindowBatch) -> list[ScoreOut]:
        t0 = time.perf_counter()
        try:
            inc = self._incremental(batch)
            inc_earlier = self._incremental_earlier(batch) if self.inc_earlier else None
        except Exception as e:  # the row's verdicts still go out: never lose an answer to the second opinion
            self.failures += 1
            log.warning("verdict blend: %s failed on %d alarm windows (%s: %s); the plan row answers alone",
                        self.incremental.name, len(batch), type(e).__name__, e)
            inc = None
        ms = (time.perf_counter() - t0) * 1e3
        row_error = None
        try:
            rows, row_earlier, skipped = self._rows(batch)
        except Exception as e:
            if self.bag is None or inc is None:
                raise
            row_error = e  # the bag may answer without the row: the alarm's verdict need not wait for the consumer's retry
            rows, row_earlier, skipped = [ScoreOut(None, None, 1, (), ROW_FAILED)] * len(batch), [[] for _ in batch.patient_ids], False
        if inc is None:
            return rows
        out, blended = [], []
        for i, (a, b) in enumerate(zip(rows, inc)):
            if a.probability is None or b.probability is None:
                out.append(a)
                continue
            blended.append(i)
            reason = a.degraded_reason
            if self.shift is None:
                p, models = 0.5 * (a.probability + b.probability), a.models + b.models
            else:
                p = self.shift.blend([a.probability] + row_earlier[i], [b.probability] + (inc_earlier[i] if inc_earlier else []))
                models = a.models + b.models + (SHIFT_NAME,)
                if skipped and batch.earlier[i] is not None and len(batch.earlier[i][0]):
                    reason = "; ".join(r for r in (reason, SHIFT_ROW_SKIPPED) if r)
            out.append(ScoreOut(p, bool(p >= self.cut), a.stage, models, reason, {**a.timings_ms, "blend_ms": ms}))
        plan = self._bag_plan(batch) if self.bag is not None else None
        features = vt = None
        if plan is not None and not plan[1]:  # the bag will run: what it and the single pipeline's last step both read, once
            try:
                features = self._batch_features(batch)
                vt = vt_alarm_readings(batch.windows, batch.masks, batch.alarm_types)
            except Exception as e:  # the gate and re-scorer compute what they need themselves; the bag counts a failure
                log.warning("verdict blend: batch features failed on %d alarm windows (%s: %s)", len(batch), type(e).__name__, e)
        out = self._gated(batch, out, blended, features, vt)
        if plan is None:
            if row_error is not None:
                raise row_error
            return out
        out, counts = self._bagged(batch, out, features, vt, *plan)
        if row_error is not None and any(s.probability is None for s in out):
            raise row_error  # neither answered every window: the consumer retries, as without the bag (nothing counted)
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + n)
        if row_error is not None:
            self.row_failures += 1
            log.warning("verdict blend: the plan row failed on %d alarm windows (%s: %s); the bag answered alone",
                        len(batch), type(row_error).__name__, row_error)
        return out

    def _bag_plan(self, batch: WindowBatch):
        """(the positions of the alarm windows whose incremental features the lane holds, whether the bag's call on them
        would end after their earliest deadline: its cost measured at start times the ratio of its recent calls'
        measured to predicted cost), or None when there are none."""
        X = self._inc_X
        if X is None:
            return None
        idx = [i for i in range(len(batch)) if np.isfinite(X[i]).any()]
        if not idx:
            return None
        cost = getattr(self.bag, "cost_ms", None)
        predicted = self._bag_ratio * cost(len(idx)) if cost is not None else 0.0
        left_ms = (float(np.min(np.asarray(batch.deadline_unix_s)[idx])) - time.time() - BAG_MARGIN_S) * 1e3
        return idx, bool(predicted > 0 and predicted > BAG_BUDGET_SHARE * left_ms)

    def _batch_features(self, batch: WindowBatch):
        """The alarm windows' ``models.features`` rows (the batch's own when it carries them): read by the gate and the
        bag, extracted once."""
        if batch.features is not None:
            return np.asarray(batch.features)
        from models.features import extract_batch

        return extract_batch(batch.windows, batch.masks)

    def _bagged(self, batch: WindowBatch, out: list[ScoreOut], features, vt, idx: list[int], late: bool) -> tuple[list[ScoreOut], dict]:
        """(``out`` with the verdicts at ``idx`` replaced by the bag's, the counters to add). The bag's verdicts' models
        name the bag, the two sides' model, and the gate or the VT re-scorer where any member applied them; they keep
        the row's reasons but those about the row's own answer (its earlier windows skipped, its failure). ``late``: the
        single pipeline's verdicts go out, marked ``BAG_SKIPPED``; if the bag fails they go out as they are (logged)."""
        from models.definition_gate import NAME as GATE
        from models.incremental_model import MODEL
        from models.verdict_bag import NAME as BAG
        from models.vt_spectral import NAME as RESCORER

        out = list(out)
        if late:
            self._bag_ratio = 0.7 * self._bag_ratio + 0.3  # unmeasured while skipped: drifts back to the start's cost
            for i in idx:
                s = out[i]
                out[i] = ScoreOut(s.probability, s.positive, s.stage, s.models, "; ".join(r for r in (s.degraded_reason, BAG_SKIPPED) if r),
                                  s.timings_ms)
            return out, {"bag_skipped": len(idx)}
        inc = self.incremental
        t0 = time.perf_counter()
        try:
            if features is None:
                features = self._batch_features(batch)
            rows = [np.vstack([self._inc_X[i][None], inc.earlier_features(batch.patient_ids[i], float(batch.window_end_s[i]), self.bag.max_k)])
                    for i in idx]
            p, parts = self.bag.probabilities(np.asarray(features)[idx], rows, [batch.alarm_types[i] for i in idx],
                                              batch.windows[idx], batch.masks[idx], None if vt is None else vt[idx])
        except Exception as e:
            log.warning("verdict blend: the bag failed on %d alarm windows (%s: %s); the single pipeline's verdicts go out",
                        len(idx), type(e).__name__, e)
            return out, {"bag_failures": 1}
        ms = (time.perf_counter() - t0) * 1e3
        cost = getattr(self.bag, "cost_ms", None)
        if cost is not None and cost(len(idx)) > 0:
            self._bag_ratio = 0.7 * self._bag_ratio + 0.3 * min(max(ms / cost(len(idx)), 0.25), 8.0)
        for j, i in enumerate(idx):
            s = out[i]
            names = (BAG, MODEL, inc.name) + ((GATE,) if parts["gated"][:, j].any() else ()) + ((RESCORER,) if parts["rescored"][:, j].any() else ())
            kept = [r for r in (s.degraded_reason or "").split("; ") if r and r not in (SHIFT_ROW_SKIPPED, ROW_FAILED)]
            out[i] = ScoreOut(float(p[j]), bool(p[j] >= self.cut), s.stage, names, "; ".join(kept) or None, {**s.timings_ms, "bag_ms": ms})
        return out, {"bagged": len(idx)}
