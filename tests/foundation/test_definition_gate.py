"""The alarm definitions' gate: what it reads, how its margin is chosen, what it caps; and the committed gate on real
records (a VT alarm whose ECG never runs fast is capped, a true one is not)."""

import numpy as np
import pytest

from models import definition_gate as dg
from models.data import alarm_window, load_dataset
from models.errors import InvalidFieldError
from models.features import FEATURE_NAMES, N_FEATURES, extract_batch
from models.verdict_shift import load as load_shift

VT, ASY, BRADY, TACHY, VF = ("Ventricular_Tachycardia", "Asystole", "Bradycardia", "Tachycardia", "Ventricular_Flutter_Fib")


def _rows(**cols) -> np.ndarray:
    """[B, N_FEATURES] NaN rows with the named columns set (each a list, one value per row)."""
    n = len(next(iter(cols.values())))
    X = np.full((n, N_FEATURES), np.nan)
    for name, v in cols.items():
        X[:, FEATURE_NAMES.index(name)] = v
    return X


def test_the_reading_is_the_one_most_in_favour_of_the_alarm_and_none_without_beats():
    X = _rows(ECG1_max_hr5_bpm=[62.0, 0.0, 0.0, np.nan, 150.0], ECG2_max_hr5_bpm=[55.0, 70.0, 0.0, np.nan, 50.0])
    r = dg.readings(X, [VT] * 5)
    assert r[0] == 62.0 and r[1] == 70.0 and r[4] == 150.0  # the faster lead
    assert np.isnan(r[2]) and np.isnan(r[3])  # no beats on either lead, no lead: no reading, so never gated
    B = _rows(ECG1_min_hr5_bpm=[55.0, 0.0], ECG2_min_hr5_bpm=[60.0, 58.0], ABP_min_hr5_bpm=[52.0, np.nan])
    assert list(dg.readings(B, [BRADY] * 2)) == [52.0, 0.0]  # the slowest source; a lead without beats reads as a pause
    A = _rows(cons_max_gap_s=[1.2, np.nan])
    a = dg.readings(A, [ASY, ASY])
    assert a[0] == 1.2 and np.isnan(a[1])
    assert np.isnan(dg.readings(_rows(ECG1_dom_freq_hz=[5.0]), [VF])[0])  # VF/flutter has no reading
    with pytest.raises(InvalidFieldError) as e:
        dg.readings(np.zeros((2, 5)), [VT, VT])
    assert e.value.field == "features" and e.value.value == (2, 5)
    with pytest.raises(InvalidFieldError, match="alarm_types"):
        dg.readings(X, [VT])


def _vt_data(seed: int = 0, slow=(40, 75)):
    """VT windows: true alarms run fast (>= 95 bpm); false ones either fast or slow (``slow`` bpm); the model calls some
    of each kind true."""
    rng = np.random.default_rng(seed)
    n = 300
    y = (rng.random(n) < 0.3).astype(int)
    reading = np.where(y == 1, rng.uniform(95, 250, n), np.where(rng.random(n) < 0.3, rng.uniform(*slow, n), rng.uniform(100, 250, n)))
    p = np.clip(np.where(y == 1, rng.uniform(0.2, 0.9, n), rng.uniform(0.0, 0.5, n)), 0, 1)
    return p, y, reading


def test_fit_gates_slow_false_alarms_and_caps_them_below_the_cut():
    p, y, reading = _vt_data()
    gate = dg.fit(p, y, [VT] * len(y), reading)
    assert set(gate.margins) == {VT}
    lim = gate.limits()[VT]
    assert lim == pytest.approx(100.0 * (1 - gate.margins[VT])) and lim <= 80.0
    assert 0 < gate.caps[VT] < dg.CUT
    q, g = gate.apply(p, reading, [VT] * len(y))
    assert g.sum() > 0 and np.all(reading[g] < lim) and y[g].sum() == 0
    assert np.all(q[g] <= gate.caps[VT]) and np.all(q[~g] == p[~g]) and np.all(q <= p)
    def score(pp):
        pos = pp >= dg.CUT
        return dg._score(int((pos & (y == 1)).sum()), int((~pos & (y == 0)).sum()), int((pos & (y == 0)).sum()), int((~pos & (y == 1)).sum()))

    assert score(q) > score(p)


def test_fit_keeps_the_more_careful_margin_and_no_gate_where_gating_costs_a_true_alarm():
    p, y, reading = _vt_data(1, slow=(40, 65))
    # ties: no window reads between 65 and 80, so a 20 % margin (limit 80) and 30 % (limit 70) gate the same: the larger
    assert dg.fit(p, y, [VT] * len(y), reading).margins[VT] == pytest.approx(0.3)
    # a true alarm read at 75 bpm: a 20 % margin would cap it, 30 % does not
    p, y, reading = np.append(p, 0.6), np.append(y, 1), np.append(reading, 75.0)
    assert dg.fit(p, y, [VT] * len(y), reading).margins[VT] == pytest.approx(0.3)
    # every slow window a true alarm: no margin helps, no gate
    y2 = np.where(reading < 80, 1, y)
    assert dg.fit(np.maximum(p, 0.5 * (reading < 80)), y2, [VT] * len(y), reading).margins == {}
    with pytest.raises(InvalidFieldError, match="margins"):
        dg.fit(p, y, [VT] * len(y), reading, margins=(0.2, 1.5))


def test_a_gate_round_trips_and_refuses_what_would_not_gate_soundly():
    gate = dg.DefinitionGate({VT: 0.2, ASY: 0.2}, {VT: 0.01, ASY: 0.02}, {VT: [30, 0], ASY: [40, 0]})
    again = dg.DefinitionGate.from_dict(gate.to_dict())
    assert again == gate and again.limits() == {VT: 80.0, ASY: 3.2}
    with pytest.raises(InvalidFieldError) as e:
        dg.DefinitionGate({VT: 0.2}, {VT: 0.3})
    assert e.value.field == f"definition_gate.caps.{VT}" and e.value.value == 0.3
    with pytest.raises(InvalidFieldError, match="alarm types with a reading"):
        dg.DefinitionGate({VF: 0.2}, {VF: 0.01})
    with pytest.raises(InvalidFieldError, match="margins"):
        dg.DefinitionGate({VT: 1.2}, {VT: 0.01})
    with pytest.raises(InvalidFieldError, match="definition_gate"):
        dg.DefinitionGate.from_dict({"margins": [0.2]})
    with pytest.raises(InvalidFieldError) as e:
        dg.DefinitionGate.from_dict({"margins": {VT: "x"}, "caps": {VT: 0.01}})
    assert e.value.field == f"definition_gate.margins.{VT}" and e.value.value == "x"
    with pytest.raises(InvalidFieldError, match="fit_counts"):
        dg.DefinitionGate.from_dict({"margins": {VT: 0.2}, "caps": {VT: 0.01}, "fit_counts": {VT: 5}})
    with pytest.raises(InvalidFieldError, match="name"):
        dg.DefinitionGate.from_dict({**gate.to_dict(), "name": "other"})


def test_a_gate_fitted_on_other_definitions_takes_its_limits_from_them():
    # a bench's reading (a QRS width, definition 120 ms): narrow false alarms gated, the served definitions untouched
    width = {VT: dg.Reading(("n/a",), "max", True, 0.12, "s", "QRS width")}
    reading = np.array([0.06, 0.07, 0.065, 0.14, 0.15, 0.13] * 5)
    y = np.array([0, 0, 0, 1, 1, 1] * 5)
    gate = dg.fit(np.full(30, 0.5), y, [VT] * 30, reading, table=width)
    assert gate.margins == {VT: 0.4} and gate.limits() == {VT: pytest.approx(0.072)}  # the largest margin gating all three
    p, g = gate.apply(np.full(30, 0.5), reading, [VT] * 30)
    assert g.tolist() == (y == 0).tolist() and (p[g] < dg.CUT).all()
    assert gate.to_dict()["readings"][VT]["definition"] == 0.12 and dg.fit(np.full(30, 0.5), y, [VT] * 30, reading).margins == {}


def test_the_second_gate_reads_the_fastest_source_and_caps_after_the_first():
    """``then``: a bradycardia window where one source beats on at 70 bpm while another reads slow (missed beats) passes
    the served reading (the slowest source) and is capped by the second one (the fastest source); a window where every
    source is slow is not; both gates round-trip through their dict."""
    X = _rows(ECG1_min_hr5_bpm=[10.0, 35.0, 0.0], ECG2_min_hr5_bpm=[12.0, 36.0, 0.0], PPG_min_hr5_bpm=[70.0, 34.0, np.nan])
    assert list(dg.readings(X, [BRADY] * 3)) == [10.0, 34.0, 0.0]  # the served reading: the slowest source
    assert list(dg.readings(X, [BRADY] * 3, dg.AGREE_READINGS)) == [70.0, 36.0, 0.0]  # the second: the fastest source
    second = dg.DefinitionGate({BRADY: 0.2}, {BRADY: 0.03}, {BRADY: [10, 0]}, dg.AGREE_READINGS)
    assert second.limits() == {BRADY: 48.0}
    gate = dg.DefinitionGate({VT: 0.2}, {VT: 0.01}, {VT: [30, 0]}, None, second)
    p, g = gate.apply_windows([0.9, 0.9, 0.9], None, None, [BRADY] * 3, features=X)
    assert g.tolist() == [True, False, False] and p.tolist() == [0.03, 0.9, 0.9]
    again = dg.DefinitionGate.from_dict(gate.to_dict())
    assert again == gate and again.then.table is dg.AGREE_READINGS and again.then.limits() == {BRADY: 48.0}
    assert gate.to_dict()["then"]["readings"][BRADY]["words"] == "the fastest source's slowest 5-beat rate"
    with pytest.raises(InvalidFieldError) as e:
        dg.DefinitionGate({VT: 0.2}, {VT: 0.01}, then=dg.DefinitionGate({BRADY: 0.2}, {BRADY: 0.03}))  # not on AGREE_READINGS
    assert e.value.field == "definition_gate.then"
    bad = gate.to_dict()
    bad["then"]["caps"][BRADY] = 0.5
    with pytest.raises(InvalidFieldError) as e:
        dg.DefinitionGate.from_dict(bad)
    assert e.value.field == f"definition_gate.then.caps.{BRADY}" and e.value.value == 0.5
    third = gate.to_dict()
    third["then"]["then"] = second.to_dict()
    with pytest.raises(InvalidFieldError) as e:
        dg.DefinitionGate.from_dict(third)
    assert e.value.field == "definition_gate.then.then"
    with pytest.raises(InvalidFieldError) as e:
        dg.DefinitionGate({VT: 0.2}, {VT: 0.01}, then=dg.DefinitionGate({BRADY: 0.2}, {BRADY: 0.03}, None, dg.AGREE_READINGS, second))
    assert e.value.field == "definition_gate.then"
    with pytest.raises(InvalidFieldError, match="fit_counts"):
        dg.DefinitionGate.from_dict({**gate.to_dict(), "fit_counts": {VT: [30, "x"]}})
    import copy
    import dataclasses

    assert dataclasses.replace(copy.deepcopy(gate), caps={VT: 0.02}).then == second  # a copied table is still the second gate's


def test_fit_served_chooses_the_second_gate_on_the_first_ones_output():
    """Bradycardia false alarms whose fastest source beats at 60-90 bpm while their slowest reads a pause, true ones
    slow on every source: the served reading cannot tell them apart, the second one gates the false ones."""
    rng = np.random.default_rng(1)
    n = 120
    y = (np.arange(n) % 2).astype(int)
    fast = np.where(y == 1, rng.uniform(20, 38, n), rng.uniform(60, 90, n))
    X = _rows(ECG1_min_hr5_bpm=list(rng.uniform(5, 30, n)), PPG_min_hr5_bpm=list(fast))
    p = np.where(y == 1, rng.uniform(0.3, 0.9, n), rng.uniform(0.2, 0.8, n))
    gate, q = dg.fit_served(p, y, [BRADY] * n, X)
    assert gate.margins == {} and gate.then is not None and BRADY in gate.then.margins
    assert (q[y == 0] < dg.CUT).all() and np.array_equal(q[y == 1], p[y == 1])
    p2, g = gate.apply_windows(p, None, None, [BRADY] * n, features=X)
    assert np.array_equal(p2, q) and g.tolist() == (y == 0).tolist()


def test_the_committed_second_gate_caps_a_false_bradycardia_alarm_whose_ecg_beats_on(data_dir):
    """b553l: a false bradycardia alarm whose finger pulse reads 31 bpm while both ECG leads beat at ~78; b124s: a true
    one, every source ~35 bpm. The served reading (the slowest source) gates neither; the second gate caps b553l."""
    gate = load_shift().gate
    assert gate.then is not None and gate.then.limits() == {BRADY: 48.0} and BRADY not in gate.margins
    recs, _ = load_dataset(data_dir, ["b553l", "b124s"])
    recs = sorted(recs, key=lambda r: r.name != "b553l")
    W, M = np.stack([alarm_window(r) for r in recs]), np.stack([r.mask for r in recs])
    X = extract_batch(W, M)
    assert dg.readings(X, [BRADY] * 2)[0] < 40.0  # the slowest source: "slow enough" for the served reading
    fast = dg.readings(X, [BRADY] * 2, dg.AGREE_READINGS)
    assert fast[0] > 70.0 and fast[1] < 40.0
    p, g = gate.apply_windows([0.9, 0.9], W, M, [BRADY] * 2)
    assert g.tolist() == [True, False] and p[0] == gate.then.caps[BRADY] < dg.CUT and p[1] == 0.9


@pytest.fixture(scope="module")
def vt_records(data_dir):
    # v756s: a false VT alarm on a slow, regular rhythm (both ECG leads ~55 bpm; one lead noisy) that the models call true;
    # v607l, v701l: true VT alarms whose fastest 5 ECG beats read just over 100 bpm
    recs, skipped = load_dataset(data_dir, ["v756s", "v607l", "v701l"])
    assert not skipped
    return {r.name: r for r in recs}


def test_the_committed_gate_caps_a_slow_vt_alarm_and_leaves_true_ones_on_real_records(vt_records):
    gate = load_shift().gate
    assert gate is not None and VT in gate.margins and gate.limits()[VT] <= 90.0
    names = ["v756s", "v607l", "v701l"]
    W = np.stack([alarm_window(vt_records[n]) for n in names])
    M = np.stack([vt_records[n].mask for n in names])
    r = dg.readings(extract_batch(W, M), [VT] * 3)
    assert r[0] < 70.0 and r[1] > 100.0 and r[2] > 100.0
    q, g = gate.apply([0.75, 0.9, 0.8], r, [VT] * 3)
    assert list(g) == [True, False, False] and q[0] < dg.CUT and list(q[1:]) == [0.9, 0.8]


def test_served_probabilities_of_real_alarms_are_the_lane_offline_and_gate_the_slow_vt(vt_records):
    """``models.verdict_shift.served_probabilities`` (what ``holmes evaluate`` reports as ``served-verdict``): the
    committed plan row, incremental model, shift, gate and VT re-scorer on v756s / v607l / v701l."""
    from models import vt_spectral as vs

    from deploy.holmes_config import HolmesConfig
    from holmes.compose.plan import Plan
    from models.verdict_shift import served_probabilities

    cfg = HolmesConfig.load(None, {})
    plan, shift = Plan.load(cfg.resolved(cfg.service.plan_path)), load_shift()
    recs = [vt_records[n] for n in ("v756s", "v607l", "v701l")]
    registry = cfg.resolved(cfg.service.registry_dir)
    p, g = served_probabilities(recs, shift, plan, registry)
    ungated, none = served_probabilities(recs, shift, plan, registry, gate=False)
    assert list(g) == [True, False, False] and not none.any()
    assert p[0] < dg.CUT <= ungated[0]  # the models call v756s true; the gate does not, nor the re-scorer after it
    # every VT verdict is then re-scored on its window's spectral readings: the gated one from the gate's cap
    R = vs.readings(np.stack([alarm_window(r) for r in recs]), np.stack([r.mask for r in recs]))
    expect, _ = shift.vt_rescorer.apply([shift.gate.caps[VT], *ungated[1:]], R, [VT] * 3)
    assert p == pytest.approx(expect, abs=1e-9) and np.all(p[1:] >= dg.CUT)
