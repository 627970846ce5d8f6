"""The offline side of ``bench/serve_beds.py``: what the service should have published for the verdicts and routine
windows it did publish, computed in process on the same windows cut from the same records."""

from __future__ import annotations

import numpy as np


def offline_check(verdicts, plan_path: str, registry: str, start_s: float) -> dict:
    """Largest |published - offline| over the verdicts: the same plan row (members, rule, calibration) in process on
    the same window cut from the record; for a blended verdict (``features-typed-inc`` among its models) the mean of
    that and the incremental model on the bed's record streamed from ``start_s`` (where the replay began); for a
    shifted one (``verdict-shift`` among its models) each side over the windows ending 0..K s before the alarm's that
    the replay had (starting at or after ``start_s``), through the shift's map (``models.verdict_shift``); then, with the
    shift's definition gate, capped where the gate reads the alarm window's batch features as missing the alarm's
    definition (``gate_disagree``: verdicts where the service's gating and the offline gate's differ); then, with the
    shift's VT re-scorer, each VT verdict re-scored on its window's spectral readings (``rescore_disagree`` likewise).
    A verdict the bag published (``verdict-bag`` among its models) is checked against the bag in process
    (``models.verdict_bag.served_probabilities``) on the bed's record streamed from ``start_s``."""
    from holmes.compose.plan import Plan, row_probabilities
    from models.data import load_dataset, resolve_data_dir, window
    from models.incremental_model import NAME, stream_probabilities
    from models.verdict_shift import NAME as SHIFT, load as load_shift
    from streams.verdict_blend import SHIFT_ROW_SKIPPED

    from models.verdict_bag import NAME as BAG

    plan = Plan.load(plan_path)
    bagged = [s for s in verdicts if BAG in s.models]
    verdicts = [s for s in verdicts if BAG not in s.models]
    shift = load_shift() if any(SHIFT in s.models for s in verdicts) else None
    k = shift.k if shift is not None else 0
    k_row = shift.k_row if shift is not None else 0
    rec_of = {s.patient_id: s.patient_id.split("-", 1)[1] for s in verdicts + bagged}
    recs = {r.name: r for r in load_dataset(resolve_data_dir(), sorted(set(rec_of.values())))[0]}
    bag_diffs, bag_counts = _bag_diffs(bagged, [recs[rec_of[s.patient_id]] for s in bagged], start_s)

    def ends(s, side: str = "inc") -> list[float]:  # the windows a verdict averages, alarm window first
        skipped = side == "row" and any(SHIFT_ROW_SKIPPED in r for r in s.degraded_reasons)
        n = (k_row if side == "row" else k) + 1 if SHIFT in s.models and not skipped else 1
        return [round(s.window_end_s - o, 3) for o in range(n) if s.window_end_s - o - s.window_s >= start_s - 1e-9 or o == 0]

    by_row: dict[str, list] = {}
    for s in verdicts:
        by_row.setdefault(s.models[0][len("plan:"):], []).append(s)
    row_p = {}
    for row, items in by_row.items():
        cut = [(s, e) for s in items for e in ends(s, "row")]
        w = np.stack([window(recs[rec_of[s.patient_id]], e, s.window_s) for s, e in cut]).astype(np.float32)
        m = np.stack([recs[rec_of[s.patient_id]].mask for s, _ in cut]) & np.isfinite(w).any(axis=2)
        p = row_probabilities(plan, row, registry, w, m, [s.alarm_type for s, _ in cut])
        for (s, _), a in zip(cut, p):
            row_p.setdefault(id(s), []).append(float(a))
    expected = {id(s): row_p[id(s)][0] for s in verdicts}
    blended = [s for s in verdicts if NAME in s.models]
    if blended:
        inc = stream_probabilities([recs[rec_of[s.patient_id]] for s in blended], start_s,
                                   [{e: s.alarm_type for e in ends(s)} for s in blended])
        for s, d in zip(blended, inc):
            inc_p = [d[e] for e in ends(s)]
            expected[id(s)] = shift.blend(row_p[id(s)], inc_p) if SHIFT in s.models else 0.5 * (row_p[id(s)][0] + inc_p[0])
    gate_disagree = gated = rescore_disagree = rescored = 0
    if shift is not None and shift.gate is not None:
        from models.definition_gate import NAME as GATE
        from models.vt_spectral import NAME as RESCORER, gate_and_rescore

        shifted = [s for s in verdicts if SHIFT in s.models]
        if shifted:
            w = np.stack([window(recs[rec_of[s.patient_id]], s.window_end_s, s.window_s) for s in shifted]).astype(np.float32)
            m = np.stack([recs[rec_of[s.patient_id]].mask for s in shifted]) & np.isfinite(w).any(axis=2)
            p, g, r = gate_and_rescore(shift.gate, shift.vt_rescorer, [expected[id(s)] for s in shifted], w, m,
                                       [s.alarm_type for s in shifted])
            for s, q, hit, again in zip(shifted, p, g, r):
                expected[id(s)] = float(q)
                gate_disagree += bool(hit) != (GATE in s.models)
                rescore_disagree += bool(again) != (RESCORER in s.models)
            gated, rescored = int(g.sum()), int(r.sum())
    diffs = [abs(expected[id(s)] - s.probability) for s in verdicts] + bag_diffs
    return {"n": len(diffs), "bagged": len(bagged), **bag_counts, "blended": len(blended), "shifted": sum(SHIFT in s.models for s in verdicts), "shift_k": k, "shift_k_row": k_row,
            "shift_row_skipped": sum(any(SHIFT_ROW_SKIPPED in r for r in s.degraded_reasons) for s in verdicts),
            "gated": gated, "gate_disagree": gate_disagree, "vt_rescored": rescored, "rescore_disagree": rescore_disagree,
            "max_abs_diff": max(diffs) if diffs else None, "rows": sorted(by_row)}


def _bag_diffs(bagged: list, records: list, start_s: float) -> tuple[list[float], dict]:
    """|published - offline| of the verdicts the bag published (``models.verdict_bag`` in process, same windows), and
    how many any member gated / VT re-scored offline, with the verdicts whose models say otherwise."""
    if not bagged:
        return [], {}
    from models.definition_gate import NAME as GATE
    from models.verdict_bag import load as load_bag, served_probabilities as bag_probabilities
    from models.vt_spectral import NAME as RESCORER

    p, parts = bag_probabilities(records, load_bag(), start_s, [s.window_end_s for s in bagged], [s.alarm_type for s in bagged])
    g, r = parts["gated"].any(0), parts["rescored"].any(0)
    counts = {"bag_gated": int(g.sum()), "bag_gate_disagree": int(sum(bool(a) != (GATE in s.models) for s, a in zip(bagged, g))),
              "bag_vt_rescored": int(r.sum()), "bag_rescore_disagree": int(sum(bool(a) != (RESCORER in s.models) for s, a in zip(bagged, r)))}
    return [abs(float(q) - s.probability) for s, q in zip(bagged, p)], counts


def offline_routine_check(routine, start_s: float, max_beds: int = 40) -> dict:
    """Largest |published - offline| over the routine windows of up to ``max_beds`` beds served by the incremental
    scorer: the same model and calibration map in process, on features of the bed's record streamed from ``start_s``
    (where the replay began) in 1 s hops, at each published window's end."""
    from models.data import load_dataset, resolve_data_dir
    from models.incremental_model import NAME, stream_probabilities

    by_bed: dict[str, dict[float, tuple[float, str]]] = {}  # bed -> window end -> (published probability, alarm context)
    for s in routine:
        if s.models and s.models[0] == NAME and s.probability is not None:
            by_bed.setdefault(s.patient_id, {})[round(s.window_end_s, 3)] = (s.probability, s.alarm_type)
    beds = sorted(by_bed)[:max_beds]
    if not beds:
        return {"n": 0}
    recs = {r.name: r for r in load_dataset(resolve_data_dir(), sorted({b.split("-", 1)[1] for b in beds}))[0]}
    offline = stream_probabilities([recs[b.split("-", 1)[1]] for b in beds], start_s,
                                   [{e: t for e, (_, t) in by_bed[b].items()} for b in beds])
    diffs = [abs(offline[i][e] - p) for i, b in enumerate(beds) for e, (p, _) in by_bed[b].items() if e in offline[i]]
    # a bed whose state restarted (a partition taken over, a gap) is scored from its window alone until the state
    # has seen a whole window again: per such bed, the window ends (record s) over which it differs
    spans = {}
    for i, b in enumerate(beds):
        off = sorted(e for e, (p, _) in by_bed[b].items() if e in offline[i] and abs(offline[i][e] - p) > 1e-9)
        if off:
            spans[b] = [off[0], off[-1], len(off)]
    return {"n": len(diffs), "beds": len(beds), "max_abs_diff": max(diffs) if diffs else None,
            "differing": sum(v[2] for v in spans.values()), "beds_differing": len(spans),
            "differing_span_s_max": max((v[1] - v[0] for v in spans.values()), default=None), "differing_by_bed": spans}
