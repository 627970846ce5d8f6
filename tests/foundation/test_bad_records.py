"""Bad records are reported with a reason naming the field and value; the others are still evaluated."""

import json
import shutil

import numpy as np
import pytest

from holmes.cli import main
from models.data import list_records, load_dataset, load_record
from models.errors import RecordError

N_GOOD = 30


@pytest.fixture
def bad_folder(tmp_path, data_dir, copy_records, write_record):
    all_infos = list_records(data_dir)
    infos = {i.name: i for i in all_infos}
    good = [i.name for i in all_infos[:N_GOOD]]
    relabel = all_infos[N_GOOD].name  # a real record given an alarm type the challenge does not have
    copy_records(data_dir, tmp_path, good)
    sig = np.random.default_rng(0).normal(size=(76000, 3)) * 0.2
    write_record(tmp_path, "zfs360", sig, ["II", "V", "PLETH"], ["mV", "mV", "NU"], fs=360)
    nan_sig = sig.copy(); nan_sig[:, 2] = np.nan
    write_record(tmp_path, "znanppg", nan_sig, ["II", "V", "PLETH"], ["mV", "mV", "NU"])
    write_record(tmp_path, "zrenamed", sig, ["II", "LEADX", "PLETH"], ["mV", "mV", "NU"])
    shutil.copy(data_dir / "records" / "a109l.hea", tmp_path / "records" / "ztrunc.hea")
    (tmp_path / "records" / "ztrunc.hea").write_text((tmp_path / "records" / "ztrunc.hea").read_text().replace("a109l", "ztrunc"))
    blob = (data_dir / "records" / "a109l.mat").read_bytes()
    (tmp_path / "records" / "ztrunc.mat").write_bytes(blob[: len(blob) // 3])
    copy_records(data_dir, tmp_path, [relabel])
    names = good + ["zfs360", "znanppg", "zrenamed", "ztrunc", relabel]
    (tmp_path / "RECORDS").write_text("\n".join(names) + "\n")
    alarms = [f"{n},{infos[n].alarm_type},{infos[n].label}" for n in good]
    alarms += ["zfs360,Asystole,0", "znanppg,Asystole,0", "zrenamed,Asystole,0", "ztrunc,Asystole,0", f"{relabel},Hypotension,1"]
    (tmp_path / "ALARMS").write_text("\n".join(alarms) + "\n")
    return tmp_path, good, relabel


def test_each_defect_has_a_typed_reason(bad_folder):
    folder, good, relabel = bad_folder
    with pytest.raises(RecordError, match=r"record zfs360: fs_hz must be 250, got 360"):
        load_record(folder, "zfs360")
    with pytest.raises(RecordError, match=r"record ztrunc: signal file must be a readable WFDB record"):
        load_record(folder, "ztrunc")
    info = [i for i in list_records(folder) if i.name == relabel][0]
    with pytest.raises(RecordError, match=r"alarm_type must be one of .* got 'Hypotension'"):
        load_record(folder, relabel, info)
    nan = load_record(folder, "znanppg")  # all-NaN channel: handled by the mask
    assert nan.mask.tolist() == [True, True, False, False, False]
    ren = load_record(folder, "zrenamed")  # unknown channel name: ignored, reported, masked
    assert ren.ignored_channels == ["LEADX"] and ren.mask.tolist() == [True, False, False, True, False]
    records, skipped = load_dataset(folder)
    assert sorted(n for n, _ in skipped) == sorted([relabel, "zfs360", "ztrunc"])
    assert len(records) == len(good) + 2


def test_evaluate_reports_and_skips_bad_records(bad_folder, tmp_path_factory, capsys):
    folder, good, relabel = bad_folder
    out = tmp_path_factory.mktemp("eval") / "cv.json"
    rc = main(["evaluate", "--cv", "--data", str(folder), "--models", "features-logreg", "--seeds", "1", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "skipped zfs360: record zfs360: fs_hz must be 250, got 360" in printed
    res = json.loads(out.read_text())
    assert {s["record"] for s in res["skipped"]} == {"zfs360", "ztrunc", relabel}
    assert res["n_records"] == len(good) + 2
    row = res["models"][0]
    assert row["name"] == "features-logreg" and 0.0 <= row["auroc"] <= 1.0 and row["n"] == len(good) + 2
    assert 0.0 <= row["ece"] <= 1.0 and 0.0 <= row["ece_calibrated"] <= 1.0  # raw and nested-calibrated
