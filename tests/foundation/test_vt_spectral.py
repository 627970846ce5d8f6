"""The VT spectral readings and the re-scorer (``models.vt_spectral``): the readings on synthetic and real ECG, the
fit and its typed file form, and the verdict lane naming it."""

import numpy as np
import pytest

from models import vt_spectral as vs
from models.data import FS_HZ, alarm_window, load_dataset
from models.errors import InvalidFieldError

VT = vs.VT
N = 16 * FS_HZ
t = np.arange(N) / FS_HZ


def _window(ecg1, ecg2=None):
    w = np.full((5, N), np.nan, dtype=np.float32)
    w[0] = ecg1
    if ecg2 is not None:
        w[1] = ecg2
    return w


def test_a_sinusoidal_run_reads_pure_and_narrow_spikes_do_not():
    sine = np.sin(2 * np.pi * 3.0 * t)  # a wide-complex run at 180 bpm: all power at one rate
    spikes = np.zeros(N)
    spikes[:: int(FS_HZ / 1.2)] = 1.0  # narrow beats at 72 bpm: power spread over the harmonics up to 30 Hz
    noise = np.random.default_rng(0).standard_normal(N)
    R = vs.readings(np.stack([_window(sine), _window(spikes), _window(noise)]))
    assert R[0, 0] > 0.95 and R[0, 1] < 0.01
    assert R[1, 0] < 0.3 and R[1, 1] > 0.3
    assert R[2, 0] < 0.3 and R[2, 1] > 0.5
    # the purest lead and the quietest high band across the two leads; a flat, gapped or masked lead gives none
    both = vs.readings(np.stack([_window(spikes, sine), _window(np.zeros(N), sine)]))
    assert both[0] == pytest.approx(R[0]) and both[1] == pytest.approx(R[0])
    gapped = sine.copy()
    gapped[-100] = np.nan
    none = vs.readings(np.stack([_window(gapped), _window(sine)]), masks=np.array([[True] * 5, [False] * 5]))
    assert np.isnan(none).all()
    # only the last 10 s count: a run that ended 12 s before the alarm is not read
    early = np.where(t < 4, sine, 0.1 * spikes)
    assert vs.readings(early[None, None].repeat(5, 1))[0, 0] < 0.3


def test_the_fit_weighs_purity_and_rescores_only_vt_alarms():
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 2, n)
    purity = np.clip(0.5 + 0.25 * (2 * y - 1) + 0.1 * rng.standard_normal(n), 0, 1)
    R = np.column_stack([purity, rng.uniform(0, 0.2, n)])
    p = np.full(n, 0.3)  # the verdict alone does not tell them apart
    types = [VT] * (n - 10) + ["Tachycardia"] * 10
    r = vs.fit(p, y, types, R)
    assert r.coef[1] > 1.0 and r.fit_counts == (int((y[:-10] == 0).sum()), int((y[:-10] == 1).sum()))
    q, hit = r.apply(p, R, types)
    assert hit.tolist() == [True] * (n - 10) + [False] * 10 and (q[-10:] == 0.3).all()
    vt = np.arange(n - 10)
    assert np.mean(q[vt][y[vt] == 1]) > 0.6 > 0.3 > np.mean(q[vt][y[vt] == 0])
    back = vs.VTRescorer.from_dict(r.to_dict())
    assert back == r and back.apply(p, R, types)[0] == pytest.approx(q)
    with pytest.raises(InvalidFieldError, match="true and false"):
        vs.fit(p[:5], np.ones(5), [VT] * 5, R[:5])


def test_a_broken_rescorer_file_names_its_field():
    good = vs.VTRescorer((0.5, 0.03), (0.3, 0.06), -0.2, (0.9, 1.0, 0.0)).to_dict()
    with pytest.raises(InvalidFieldError) as e:
        vs.VTRescorer.from_dict({**good, "coef": [1.0, 2.0]})
    assert e.value.field == "vt_rescorer.coef" and e.value.value == [1.0, 2.0]
    with pytest.raises(InvalidFieldError) as e:
        vs.VTRescorer.from_dict({**good, "iqr": [0.3, 0.0]})
    assert e.value.field == "vt_rescorer.iqr"
    with pytest.raises(InvalidFieldError) as e:
        vs.VTRescorer.from_dict({**good, "name": "other"})
    assert e.value.field == "vt_rescorer" and e.value.value == "other"
    with pytest.raises(InvalidFieldError) as e:
        vs.VTRescorer.from_dict({**good, "median": ["x", 1]})
    assert e.value.field == "vt_rescorer"


def test_real_vt_alarms_read_as_the_nested_bench_found(data_dir):
    """v607l and v701l: true VT alarms; v756s: a false one on a slow regular rhythm. The committed shift's re-scorer
    weighs purity up."""
    from models.verdict_shift import load

    recs = {r.name: r for r in load_dataset(data_dir, ["v756s", "v607l", "v701l"])[0]}
    R = vs.readings(np.stack([alarm_window(recs[n]) for n in ("v607l", "v701l", "v756s")]),
                    np.stack([recs[n].mask for n in ("v607l", "v701l", "v756s")]))
    assert R[0, 0] > 0.7 and R[1, 0] > 0.7 and R[2, 0] < 0.45
    r = load().vt_rescorer
    assert r is not None and r.coef[0] > 0 and r.coef[1] > 0 and sum(r.fit_counts) == 227
    q, _ = r.apply([0.5, 0.5, 0.5], R, [VT] * 3)
    assert q[0] > 0.5 and q[1] > 0.5 and q[2] < 0.5


def test_the_verdict_lane_names_the_rescorer_on_vt_alarms_only(data_dir):
    """A shift with a re-scorer: the VT verdict is re-scored and names ``vt-spectral``; the same window under another
    alarm type passes unchanged; without the gate, no re-scoring (it was fitted after the gate)."""
    from models.calibration import Calibrator
    from models.definition_gate import DefinitionGate
    from models.verdict_shift import VerdictShift
    from streams.incremental_scorer import incremental_factory
    from streams.scorer import ScoreOut, WindowBatch
    from streams.verdict_blend import VerdictBlend

    class Row:
        name = "serve:holmes:verdicts"

        def score(self, b):
            return [ScoreOut(0.6, True, 1, ("plan:row", "m1")) for _ in range(len(b))]

    (r,), _ = load_dataset(data_dir, ["v607l"])
    w = alarm_window(r).astype(np.float32)
    b = WindowBatch(["a", "b"], np.full(2, 300.0), np.stack([w, w]), np.stack([r.mask, r.mask]), [VT, "Tachycardia"],
                    np.ones(2, dtype=bool), np.zeros(2), np.zeros(2))
    rescorer = vs.VTRescorer((0.5, 0.03), (0.3, 0.06), -2.0, (1.0, 3.0, 0.0))
    shift = VerdictShift(0, Calibrator("none"), vt_rescorer=rescorer)
    gate = DefinitionGate({"Asystole": 0.2}, {"Asystole": 0.02})
    inc = incremental_factory()
    plain = VerdictBlend(Row(), incremental_factory(), shift=shift).score(b)
    lane = VerdictBlend(Row(), inc, shift=shift, gate=gate)
    out = lane.score(b)
    R = vs.readings(w[None], r.mask[None])
    expect, _ = rescorer.apply([plain[0].probability], R, [VT])
    assert out[0].probability == pytest.approx(expect[0], abs=1e-12) and out[0].models[-1] == vs.NAME
    assert out[1].probability == pytest.approx(plain[1].probability, abs=1e-12) and vs.NAME not in out[1].models
    assert lane.stats()["verdicts_vt_rescored"] == 1 and vs.NAME not in plain[0].models
