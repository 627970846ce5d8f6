"""`holmes train --tiny` end to end on real records: a new registry version, profiles, `holmes zoo list`."""

from __future__ import annotations

import json

import numpy as np

from holmes.cli import main
from models.registry import Registry


class TestTinyTraining:
    def test_train_tiny_writes_a_version_and_lists_it(self, tmp_path, capsys, records):
        reg_path = tmp_path / "registry"
        rc = main(["train", "--tiny", "--only", "cnn", "--workers", "1", "--registry", str(reg_path),
                   "--staging", str(tmp_path / "staging")])
        assert rc == 0
        reg = Registry(reg_path)
        assert reg.versions() == ["v0001"] and reg.latest() == "v0001"
        idx = reg.index()
        assert len(idx["members"]) == 3 and idx["data"]["n_records"] == 60 and idx["data"]["tiny"] is True
        assert all("cnn" in m["name"] for m in idx["members"])
        for p in reg.profiles():
            assert len(p["oof"]["prob"]) == 60 and np.all(np.isfinite(p["oof"]["prob"]))
            assert set(p["latency_ms"]) == {"1", "8", "64"} and p["macs"] > 0
            assert p["train"]["refit_epochs"] >= 1 and len(p["train"]["best_epochs"]) == 5
        assert "cnn-ensemble" in reg.ensembles()
        members = reg.load_all()
        from models.zoo_eval import alarm_batch

        w, m, t = alarm_batch(records)
        for member in members:
            p = member.predict_proba(w, m, t)
            assert p.shape == (len(records),) and np.all((p >= 0) & (p <= 1))

        # a second run resumes from staging (no refit) and writes v0002 without touching v0001
        before = (reg_path / "v0001" / "index.json").read_bytes()
        assert main(["train", "--tiny", "--only", "cnn", "--workers", "1", "--registry", str(reg_path),
                     "--staging", str(tmp_path / "staging")]) == 0
        assert Registry(reg_path).latest() == "v0002"
        assert (reg_path / "v0001" / "index.json").read_bytes() == before
        capsys.readouterr()

        assert main(["zoo", "list", "--registry", str(reg_path), "--json", str(tmp_path / "zoo.json")]) == 0
        out = capsys.readouterr().out
        assert "cnn-ecg-w8-d2" in out and "cnn-ensemble" in out and "AUROC" in out
        rows = json.loads((tmp_path / "zoo.json").read_text())["rows"]
        assert len(rows) == 4
        assert main(["zoo", "verify", "--registry", str(reg_path)]) == 0

    def test_train_tiny_supernet_registers_every_subnet_over_one_file(self, tmp_path, records):
        reg_path = tmp_path / "registry"
        assert main(["train", "--tiny", "--only", "supernet", "--workers", "1", "--registry", str(reg_path),
                     "--staging", str(tmp_path / "staging")]) == 0
        reg = Registry(reg_path)
        idx = reg.index()
        from models.supernet import SupernetConfig

        names = [s.name for s in SupernetConfig().subnets()]
        assert sorted(m["name"] for m in idx["members"]) == sorted(names)
        assert {m["weights_file"] for m in idx["members"]} == {"supernet.pt"}  # one weights file for all subnets
        for p in reg.profiles():
            assert p["kind"] == "subnet" and len(p["oof"]["prob"]) == 60 and set(p["oof"]["fold"]) == {0, 1, 2, 3, 4}
            assert p["macs"] > 0 and p["params"] > 0 and p["train"]["refit_epochs"] >= 1
        macs = {p["name"]: p["macs"] for p in reg.profiles()}
        assert macs[names[0]] < macs[names[-1]]
        members = reg.load_all()
        assert len({id(m.supernet) for m in members}) == 1  # loaded once, shared by every subnet member
        from models.zoo_eval import alarm_batch

        w, m, t = alarm_batch(records)
        for member in members[:: 6]:
            p = member.predict_proba(w, m, t)
            assert p.shape == (len(records),) and np.all((p >= 0) & (p <= 1))
