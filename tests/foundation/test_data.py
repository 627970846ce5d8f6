"""The data layer on real CinC 2015 records: listing, canonical slots, windows equal WFDB slices."""

import numpy as np
import pytest
import wfdb

from models.data import (ALARM_TYPES, SLOTS, alarm_window, assign_slots, cv_folds, list_records, load_dataset,
                         resolve_data_dir, sliding_windows, window)
from models.errors import InvalidFieldError


def test_list_records_matches_alarms_file(data_dir):
    infos = list_records(data_dir)
    names = (data_dir / "RECORDS").read_text().split()
    assert [i.name for i in infos] == names
    assert {i.alarm_type for i in infos} <= set(ALARM_TYPES)
    assert {i.label for i in infos} == {0, 1}


def test_every_shared_record_loads(data_dir):
    records, skipped = load_dataset(data_dir)
    assert skipped == []
    assert len(records) == len((data_dir / "RECORDS").read_text().split())
    for r in records:
        assert r.signals.shape[0] == len(SLOTS) and r.signals.dtype == np.float32
        assert r.mask[0], f"{r.name} has no ECG"


@pytest.mark.parametrize("name", ["a109l", "a134s", "t106s"])
def test_windows_are_wfdb_slices(data_dir, record, name):
    rec = record(name)
    raw = wfdb.rdrecord(str(data_dir / "records" / name))
    slots, _ = assign_slots(raw.sig_name)
    w = alarm_window(rec, 16.0)
    assert w.shape == (5, 4000)
    for j, s in enumerate(slots):
        np.testing.assert_array_equal(w[s], raw.p_signal[75000 - 4000 : 75000, j].astype(np.float32))
    for end_s, w in list(sliding_windows(rec, 10.0, 7.0))[:5]:
        stop = int(end_s * 250)
        for j, s in enumerate(slots):
            np.testing.assert_array_equal(w[s], raw.p_signal[stop - 2500 : stop, j].astype(np.float32))
    absent = [i for i in range(5) if i not in slots]
    assert np.isnan(w[absent]).all()


def test_sliding_window_count(record):
    rec = record("a109l")  # 330 s
    ends = [e for e, _ in sliding_windows(rec, 16.0, 1.0)]
    assert ends[0] == 16.0 and ends[-1] == 330.0 and len(ends) == 315


def test_slot_assignment_varies_by_record():
    assert assign_slots(["II", "V", "PLETH", "ABP"])[0] == [0, 1, 3, 2]
    assert assign_slots(["III", "MCL", "ABP", "RESP"])[0] == [0, 1, 2, 4]
    slots, ignored = assign_slots(["II", "FOO", "PLETH"])
    assert slots == [0, None, 3] and ignored == ["FOO"]


def test_window_outside_record_is_rejected(record):
    rec = record("a134s")
    with pytest.raises(InvalidFieldError, match="end_s"):
        window(rec, 301.0, 16.0)
    with pytest.raises(InvalidFieldError, match="window_s must be > 0"):
        window(rec, 100.0, 0)


def test_folds_are_stratified_and_deterministic(data_dir):
    infos = list_records(data_dir)
    f0, f0b, f1 = cv_folds(infos, 5, 0), cv_folds(infos, 5, 0), cv_folds(infos, 5, 1)
    np.testing.assert_array_equal(f0, f0b)
    assert (f0 != f1).any()
    y = np.array([i.label for i in infos])
    for k in range(5):
        assert abs(y[f0 == k].mean() - y.mean()) < 0.08
        assert abs((f0 == k).sum() - len(infos) / 5) <= 2


def test_data_dir_resolution(tmp_path, monkeypatch, data_dir):
    monkeypatch.delenv("HOLMES_DATA", raising=False)
    assert resolve_data_dir(str(data_dir)) == data_dir
    with pytest.raises(InvalidFieldError, match="--data must be a folder containing a RECORDS file"):
        resolve_data_dir(str(tmp_path))
    monkeypatch.setenv("HOLMES_DATA", str(tmp_path))
    with pytest.raises(InvalidFieldError, match="HOLMES_DATA"):
        resolve_data_dir()
