"""The verdict bag (``models.verdict_bag``): the committed bag, its typed file errors, its verdicts on real alarms, and
the verdict lane publishing it (and what it does when the bag or the row fails)."""

import json
import shutil
import time

import numpy as np
import pytest

from models import verdict_bag as vb
from models.data import load_dataset, window
from models.errors import InvalidFieldError

NAMES = ["v607l", "v756s", "a105l", "b124s"]  # VT true, VT false, asystole, bradycardia
VT = "Ventricular_Tachycardia"


@pytest.fixture(scope="module")
def bag():
    return vb.load()


@pytest.fixture(scope="module")
def records(data_dir):
    recs, _ = load_dataset(data_dir, NAMES)
    return sorted(recs, key=lambda r: NAMES.index(r.name))


def test_the_committed_bag_holds_five_pipelines_each_fitted_on_four_folds(bag):
    spec = json.loads((vb.DEFAULT_DIR / "bag.json").read_text())
    assert len(bag.members) == 5 and spec["records"] == 501
    assert sorted(m["held_out_fold"] for m in spec["members"]) == [0, 1, 2, 3, 4]
    assert all(395 <= m.records <= 405 for m in bag.members)  # 4 of 5 folds of the 501 records
    for m in bag.members:
        assert 0 <= m.shift.k <= 4 and m.shift.k_row == 0
        assert m.shift.gate is not None and m.shift.vt_rescorer is not None and m.shift.vt_rescorer.coef[1] > 0
        assert m.shift.gate.then is not None and "Bradycardia" in m.shift.gate.then.margins  # the second gate, each member's own
    assert bag.max_k == max(m.shift.k for m in bag.members)


def test_a_missing_altered_or_malformed_bag_is_a_typed_error(tmp_path):
    with pytest.raises(InvalidFieldError) as e:
        vb.load(tmp_path / "nowhere")
    assert e.value.field == "stream.verdict_bag_path"
    d = tmp_path / "bag"
    shutil.copytree(vb.DEFAULT_DIR, d)
    (d / "bag.json").write_text("{not json")
    with pytest.raises(InvalidFieldError) as e:
        vb.load(d)
    assert e.value.field == "verdict_bag" and "JSON" in e.value.rule
    spec = json.loads((vb.DEFAULT_DIR / "bag.json").read_text())
    (d / "bag.json").write_text(json.dumps(spec))
    with open(d / spec["members"][2]["file"], "r+b") as f:  # one byte changed
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(InvalidFieldError) as e:
        vb.load(d)
    assert e.value.field == "verdict_bag.members[2].sha256"
    (d / "bag.json").write_text(json.dumps({**spec, "name": "other"}))
    with pytest.raises(InvalidFieldError):
        vb.load(d)
    shutil.copy(vb.DEFAULT_DIR / spec["members"][2]["file"], d / spec["members"][2]["file"])
    (d / spec["members"][4]["file"]).unlink()
    (d / "bag.json").write_text(json.dumps(spec))
    with pytest.raises(InvalidFieldError) as e:
        vb.load(d)
    assert e.value.field == "verdict_bag.members[4].file"
    broken = json.loads(json.dumps(spec))
    broken["members"][1]["shift"]["k"] = 9
    shutil.copy(vb.DEFAULT_DIR / spec["members"][4]["file"], d / spec["members"][4]["file"])
    (d / "bag.json").write_text(json.dumps(broken))
    with pytest.raises(InvalidFieldError) as e:
        vb.load(d)
    assert e.value.field == "verdict_bag.members[1].verdict_shift.k" and e.value.value == 9


def test_a_bag_is_read_once_per_process_and_again_when_its_files_change(tmp_path):
    assert vb.load() is vb.load()  # the committed bag: read once, its files checked on every load
    d = tmp_path / "bag"
    shutil.copytree(vb.DEFAULT_DIR, d)
    first = vb.load(d)
    assert first is vb.load(d) and first is not vb.load()
    (d / "bag.json").write_text((d / "bag.json").read_text() + "\n")  # a new bag.json: read again
    assert vb.load(d) is not first


def test_the_bag_verdict_is_the_mean_of_its_pipelines_on_real_alarms(bag, records):
    p, parts = vb.served_probabilities(records, bag, start_s=240.0)
    P = parts["members"]
    assert P.shape == (5, len(records)) and np.all((P >= 0) & (P <= 1))
    assert np.allclose(p, P.mean(0), atol=1e-15)
    types = [r.alarm_type for r in records]
    assert types[:2] == [VT, VT] and parts["rescored"][:, :2].all() and not parts["rescored"][:, 2:].any()
    assert p[0] > p[1]  # the true VT alarm reads truer than the false one
    assert (p >= vb.CUT).tolist()[:2] == [bool(r.label) for r in records[:2]]
    # each member by hand: its row model on the batch features, its incremental model averaged over its K + 1 windows,
    # its map, then its gate on the batch features' readings and its re-scorer on the spectral readings
    from models import definition_gate as dg

    Xb, inc_rows, W, M = vb.alarm_inputs(records, bag.max_k, 240.0)
    assert all(len(r) == bag.max_k + 1 for r in inc_rows)  # the window's own features and those of the 4 before it
    R = np.full((len(records), 2), np.nan)
    R[:2] = vb.vt_readings(W[:2], M[:2])
    for j, m in enumerate(bag.members):
        row = vb._est_proba(m.row, Xb, types)
        inc = [vb._est_proba(m.inc, r[: m.shift.k + 1], [t] * (m.shift.k + 1)) for r, t in zip(inc_rows, types)]
        q = m.shift.calibrator.transform([0.5 * (a + b.mean()) for a, b in zip(row, inc)])
        q, _ = m.shift.gate.apply(q, dg.readings(Xb, types, m.shift.gate.table), types)
        q, _ = m.shift.vt_rescorer.apply(q, R, types)
        assert np.allclose(q, P[j], atol=1e-12)


def _lane_batch(records, ends):
    from streams.scorer import WindowBatch

    W = np.stack([window(r, e, 16.0) for r, e in zip(records, ends)]).astype(np.float32)
    M = np.stack([r.mask for r in records]) & np.isfinite(W).any(axis=2)
    n = len(records)
    return WindowBatch([f"bed-{r.name}" for r in records], np.asarray(ends, dtype=np.float64), W, M,
                       [r.alarm_type for r in records], np.ones(n, dtype=bool), np.zeros(n), np.full(n, 1e12))


def test_the_lane_publishes_the_bag_as_computed_offline_and_falls_back(bag, records):
    """Each bed streamed through the incremental scorer from 240 s (routine windows ending 256..259 s, then an alarm
    window ending at 260 s): the lane's verdict is the bag's in process on the same stream; a bag that raises leaves
    the single pipeline's verdicts; a row that raises is answered by the bag alone."""
    from streams.incremental_scorer import incremental_factory
    from streams.scorer import ScoreOut
    from streams.verdict_blend import VerdictBlend
    from models.verdict_shift import load as load_shift

    class Row:
        name = "serve:holmes:verdicts"

        def score(self, b):
            return [ScoreOut(0.3, True, 1, ("plan:budget_250ms", "features-typed")) for _ in range(len(b))]

    class Down(Row):
        def score(self, b):
            raise ConnectionError("service unreachable")

    start, alarm = 240.0, 260.0
    shift = load_shift()

    def lane(row, the_bag):
        inc = incremental_factory()
        blend = VerdictBlend(row, inc, shift=shift, gate=shift.gate, bag=the_bag)
        for end in np.arange(start + 16.0, alarm):  # the routine windows before the alarm's
            inc.score(_lane_batch(records, [end] * len(records)))
        return blend

    blend = lane(Row(), bag)
    out = blend.score(_lane_batch(records, [alarm] * len(records)))
    expect, parts = vb.served_probabilities(records, bag, start, [alarm] * len(records))
    assert np.allclose([s.probability for s in out], expect, atol=1e-12)
    assert all(s.models[:3] == (vb.NAME, "features-typed", "features-typed-inc") for s in out)
    assert [vb.NAME in s.models for s in out] == [True] * 4 and all(s.degraded_reason is None for s in out)
    assert all(("vt-spectral" in s.models) == (r.alarm_type == VT) for s, r in zip(out, records))
    assert blend.stats()["verdicts_bagged"] == 4 and blend.stats()["bag_failures"] == 0
    assert blend.name == "serve:holmes:verdicts+features-typed-inc+verdict-bag"  # what the demo's header names

    class Broken:
        max_k = 2

        def probabilities(self, *a):
            raise RuntimeError("bag down")

    single = lane(Row(), None).score(_lane_batch(records, [alarm] * len(records)))
    fallback = lane(Row(), Broken())
    got = fallback.score(_lane_batch(records, [alarm] * len(records)))
    assert [s.probability for s in got] == [s.probability for s in single] and vb.NAME not in got[0].models
    assert fallback.stats()["bag_failures"] == 1 and fallback.stats()["verdicts_bagged"] == 0

    class Slow:  # the real bag, at a cost that cannot meet a deadline 1 s away
        max_k = bag.max_k
        probabilities = bag.probabilities

        def cost_ms(self, n):
            return 5000.0

    late = lane(Row(), Slow())
    b = _lane_batch(records, [alarm] * len(records))
    b.deadline_unix_s[:] = time.time() + 1.0
    got = late.score(b)
    assert [s.probability for s in got] == [s.probability for s in single] and vb.NAME not in got[0].models
    assert all(s.degraded_reason == "verdict_bag_skipped: deadline" for s in got) and late.stats()["bag_skipped_deadline"] == 4
    assert bag.cost_fixed_ms > 0 and bag.cost_ms(40) > bag.cost_ms(1)  # measured when the first lane was built
    close = lane(Row(), bag)  # the real bag, 150 ms before the deadline: inside the margin the bag keeps (200 ms)
    b = _lane_batch(records, [alarm] * len(records))
    b.deadline_unix_s[:] = time.time() + 0.15
    got = close.score(b)
    assert close.stats()["bag_skipped_deadline"] == 4 and all(vb.NAME not in s.models for s in got)

    alone = lane(Down(), bag)
    got = alone.score(_lane_batch(records, [alarm] * len(records)))
    assert np.allclose([s.probability for s in got], expect, atol=1e-12) and alone.stats()["bag_row_failures"] == 1
    assert all(s.positive == (s.probability >= 1 / 6) and s.degraded_reason is None and s.models[0] == vb.NAME for s in got)
    with pytest.raises(ConnectionError):  # neither answers: the consumer retries, as without a bag
        lane(Down(), Broken()).score(_lane_batch(records, [alarm] * len(records)))
    with pytest.raises(ConnectionError):
        lane(Down(), None).score(_lane_batch(records, [alarm] * len(records)))
