"""``holmes cascade report`` on the committed cascade, and the stream wiring's service detection."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from holmes.cli import main
from models.data import list_records, resolve_data_dir


class TestCLI:
    def test_report_writes_curve_table_and_json(self, tmp_path, capsys):
        assert main(["cascade", "report", "--out-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "budget vs score" in out and "stage1/quick-trees" in out and "stage 2:" in out
        doc = json.loads((tmp_path / "cascade_report.json").read_text())
        assert (tmp_path / "cascade_curve.png").stat().st_size > 10_000
        assert doc["cv"]["n"] == len(list_records(resolve_data_dir())) and len(doc["curve"]) >= 5
        assert doc["baselines"][-1]["name"].startswith("full ensemble")
        assert all(0 <= g["lo"] <= g["hi"] <= 1 for row in doc["thresholds_"] for g in row)

    def test_fit_rejects_bad_bounds(self, capsys):
        assert main(["cascade", "fit", "--max-ick0", "1.5"]) == 2
        assert "--max-ick0 must be in [0, 1], got 1.5" in capsys.readouterr().err

    @pytest.mark.parametrize("bad,rule", [("1.5", "must be in [0, 1)"), ("-0.01", "must be in [0, 1)"), ("nan", "must be in [0, 1)"),
                                          ("often", "must be a number in [0, 1)")])
    def test_fit_rejects_a_bad_miss_bound_with_a_typed_error(self, bad, rule, capsys):
        from holmes.commands.cascade import _miss_rate
        from models.errors import InvalidFieldError

        assert main(["cascade", "fit", "--max-miss-rate", bad]) == 2  # before any record is read
        err = capsys.readouterr().err
        assert f"--max-miss-rate {rule}" in err and repr(bad if bad == "often" else float(bad)) in err
        with pytest.raises(InvalidFieldError) as e:
            _miss_rate(bad)
        assert e.value.field == "--max-miss-rate" and e.value.rule.startswith(rule)
        assert _miss_rate("none") is None and _miss_rate("0.05") == 0.05

    def test_stale_service_file_is_reported_within_seconds_naming_it(self, tmp_path, monkeypatch, capsys):
        import time

        from deploy import runtime
        from deploy.runtime import ServiceUnavailableError, service_address, service_running

        f = tmp_path / "serve.json"
        monkeypatch.setattr(runtime, "SERVICE_FILE", f)
        for var in ("HOLMES_RAY_ADDRESS", "RAY_ADDRESS"):
            monkeypatch.delenv(var, raising=False)
        with pytest.raises(ServiceUnavailableError, match="no service file"):
            service_address()
        f.write_text(json.dumps({"ray_address": "127.0.0.1:1", "pid": 2**22 + 12345}))  # a process that is gone
        with pytest.raises(ServiceUnavailableError) as e:
            service_address()
        assert e.value.source == str(f) and "stale" in str(e.value) and str(f) in str(e.value)
        f.write_text(json.dumps({"ray_address": "127.0.0.1:1", "pid": os.getpid()}))  # alive, but nothing listens
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="does not accept connections"):
            service_address()
        assert time.monotonic() - t0 < 5 and service_running() is False
        # the stream consumer with the service scorer says so at once, naming the file, instead of retrying for minutes
        t0 = time.monotonic()
        assert main(["consume", "--scorer", "serve", "--bootstrap-servers", "127.0.0.1:1", "--duration-s", "1"]) == 2
        assert str(f) in capsys.readouterr().err and time.monotonic() - t0 < 10
        # the cascade scorer falls back to its ensemble in process (and logs why)
        from holmes.commands.stream import _cascade_service

        assert _cascade_service(argparse.Namespace(deadline_ms=1000.0)) == (None, None)


class TestEvaluateRow:
    def test_evaluate_on_another_folder_has_a_cascade_row(self, tmp_path, capsys):
        """A second folder (links to 12 of the shared records; nothing copied): the held-out mode scores the
        fitted cascade as the row ``cascade`` next to the registry's members."""
        from models.data import resolve_data_dir

        src = resolve_data_dir()
        alarms = [l for l in (src / "ALARMS").read_text().splitlines() if l.strip()][::25]
        names = [l.split(",")[0] for l in alarms]
        (tmp_path / "records").mkdir()
        for n in names:
            for ext in (".hea", ".mat"):
                (tmp_path / "records" / f"{n}{ext}").symlink_to(src / "records" / f"{n}{ext}")
        (tmp_path / "RECORDS").write_text("\n".join(names) + "\n")
        (tmp_path / "ALARMS").write_text("\n".join(alarms) + "\n")
        out_json = tmp_path / "eval.json"
        rel = tmp_path / "reliability.png"
        assert main(["evaluate", "--data", str(tmp_path), "--json", str(out_json), "--reliability", str(rel)]) == 0
        rows = {r["name"]: r for r in json.loads(out_json.read_text())["models"]}
        assert "cascade" in rows and "cnn+features-ensemble" in rows
        subnets = [n for n in rows if n.startswith("supernet-")]  # the supernet's subnets are members like the others
        assert len(subnets) >= 10 and all(rows[n]["n"] == len(names) for n in subnets)
        assert all(0.0 <= r["ece"] <= 1.0 for r in rows.values())  # every row, the cascade's too
        for name in ("features-vote", "cnn+features-ensemble"):  # the map fitted on the registry's OOF predictions
            assert 0.0 <= rows[name]["ece_calibrated"] <= 1.0 and rows[name]["calibration"]["method"] in ("none", "platt", "temperature", "isotonic")
        assert rel.stat().st_size > 20_000
        row = rows["cascade"]
        assert row["n"] == len(names) and 0.0 <= row["tpr"] <= 1.0 and row["cascade_version"]
        bag = rows["served-verdict"]  # what the verdict lane publishes: the mean of the bag's 5 pipelines
        assert bag["artifact"] == "verdict-bag" and bag["members"] == 5 and bag["n"] == len(names) and 0.0 <= bag["ece"] <= 1.0
        served = rows["single-pipeline-verdict"]  # its fallback: plan row + incremental model + shift + definition gate
        assert served["n"] == len(names) and abs(served["threshold"] - 1 / 6) < 1e-12 and 0.0 <= served["ece"] <= 1.0
        assert served["gate"] == {"Asystole": 3.2, "Ventricular_Tachycardia": 80.0} and 0 <= served["gated_true"] <= served["gated"] < len(names)
        assert served["vt_rescorer"]["purity"] > 0 and served["vt_rescorer"]["logit of the gated verdict"] > 0  # then VT re-scored
        assert abs(row["mean_ms"] * row["n"] - row["measured_total_ms"]) < 1e-6 * max(1.0, row["measured_total_ms"])
