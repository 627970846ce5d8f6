"""The CLI's argument handling (the network is not reachable here, so fetch is tested up to the download)."""

import pytest

from holmes.cli import build_parser, main
from holmes.commands.data import fetch_plan
from models.errors import InvalidFieldError


def test_fetch_plan_validates_arguments(tmp_path):
    dest, db, names = fetch_plan(str(tmp_path / "x"), "challenge-2015/training", "a103l, a104s")
    assert dest == tmp_path / "x" and db == "challenge-2015/training" and names == ["a103l", "a104s"]
    assert fetch_plan(None, "challenge-2015/training", None)[2] is None
    with pytest.raises(InvalidFieldError, match="--records must hold record names"):
        fetch_plan(None, "challenge-2015/training", "a103l,../../etc")
    with pytest.raises(InvalidFieldError, match="--database must be a PhysioNet database path"):
        fetch_plan(None, "http://example/x", None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidFieldError, match="--dest must be a folder"):
        fetch_plan(str(tmp_path / "file"), "challenge-2015/training", None)


def test_cli_reports_bad_data_folder(tmp_path, capsys):
    rc = main(["data", "info", "--data", str(tmp_path)])
    assert rc == 2
    assert "--data must be a folder containing a RECORDS file" in capsys.readouterr().err


def test_data_info_on_real_folder(data_dir, capsys):
    assert main(["data", "info", "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "records: 300 loaded, 0 skipped" in out or "0 skipped" in out
    assert "Ventricular_Tachycardia" in out


def test_every_command_is_registered():
    p = build_parser()
    cmds = set(p._subparsers._group_actions[0].choices)
    assert {"data", "evaluate", "train", "zoo"} <= cmds
