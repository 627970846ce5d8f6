"""``holmes cascade report`` on the committed cascade, and the stream wiring's service detection."""

from __future__ import annotations

import json
import os

from holmes.cli import main


class TestCLI:
    def test_report_writes_curve_table_and_json(self, tmp_path, capsys):
        assert main(["cascade", "report", "--out-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "budget vs score" in out and "stage1/lead-logreg" in out and "stage 2:" in out
        doc = json.loads((tmp_path / "cascade_report.json").read_text())
        assert (tmp_path / "cascade_curve.png").stat().st_size > 10_000
        assert doc["cv"]["n"] == 300 and len(doc["curve"]) >= 5
        assert doc["baselines"][-1]["name"].startswith("full ensemble")
        assert all(0 <= g["lo"] <= g["hi"] <= 1 for row in doc["thresholds_"] for g in row)

    def test_fit_rejects_bad_bounds(self, capsys):
        assert main(["cascade", "fit", "--max-ick0", "1.5"]) == 2
        assert "--max-ick0 must be in [0, 1], got 1.5" in capsys.readouterr().err

    def test_stale_service_file_is_not_a_service(self, tmp_path):
        from holmes.commands.stream import _service_alive

        f = tmp_path / "serve.json"
        f.write_text(json.dumps({"ray_address": "127.0.0.1:1", "pid": 2**22 + 12345}))
        assert _service_alive(f) is False
        f.write_text(json.dumps({"ray_address": "127.0.0.1:1", "pid": os.getpid()}))
        assert _service_alive(f) is True
        assert _service_alive(tmp_path / "missing.json") is False
