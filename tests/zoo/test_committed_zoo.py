"""The committed zoo itself: size, compute span, one schema for every member, ensembles, registry size."""

from __future__ import annotations

import numpy as np

from models.zoo_build import aligned_oof
from models.zoo_eval import CNN_ENSEMBLE, ZOO_ENSEMBLE, cv_summary, ensemble_prob

PROFILE_KEYS = {"name", "kind", "version", "params", "macs", "latency_ms", "cv", "oof", "inputs", "config", "weights_file", "sha256"}


class TestCommittedZoo:
    def test_family_size_and_compute_span(self, registry):
        cnn = [p for p in registry.profiles() if p["kind"] == "cnn"]
        assert len(cnn) >= 24
        macs = [p["macs"] for p in cnn]
        assert max(macs) / min(macs) >= 10.0
        assert {p["config"]["inputs"] for p in cnn} == {"ecg", "ecgpulse", "all"}
        assert len({p["config"]["width"] for p in cnn}) >= 3 and len({p["config"]["depth"] for p in cnn}) >= 2

    def test_one_schema_and_shared_folds(self, registry):
        profiles = registry.profiles()
        for p in profiles:
            assert PROFILE_KEYS <= set(p), p["name"]
        records, labels, folds, probs = aligned_oof(profiles)
        assert len(records) == len(profiles[0]["oof"]["records"])  # every member scored every record
        for p in profiles:
            pos = {r: i for i, r in enumerate(p["oof"]["records"])}
            assert [p["oof"]["fold"][pos[r]] for r in records] == folds.tolist(), p["name"]

    def test_ensemble_rows_match_member_oof(self, registry):
        profiles = registry.profiles()
        ens = registry.ensembles()
        records, labels, folds, probs = aligned_oof(profiles)
        cnn_p = ensemble_prob(probs[n] for n in ens[CNN_ENSEMBLE]["members"])
        assert ens[CNN_ENSEMBLE]["cv"] == cv_summary(labels, cnn_p, folds)
        assert len(ens[CNN_ENSEMBLE]["members"]) == sum(p["kind"] == "cnn" for p in profiles)
        if any(p["kind"] == "features" for p in profiles):
            feat = [p["name"] for p in profiles if p["kind"] == "features"]
            zoo_p = ensemble_prob([cnn_p] + [probs[n] for n in feat])
            assert ens[ZOO_ENSEMBLE]["cv"] == cv_summary(labels, zoo_p, folds)

    def test_cv_quality_floor(self, registry):
        """Out-of-fold figures (thresholds chosen on other folds) stay above what this zoo measured, minus slack."""
        ens = registry.ensembles()
        assert ens[CNN_ENSEMBLE]["cv"]["auroc"] >= 0.80
        cnn = [p for p in registry.profiles() if p["kind"] == "cnn"]
        assert np.median([p["cv"]["auroc"] for p in cnn]) >= 0.75

    def test_registry_stays_small(self, registry):
        """28 zoo members plus the supernet (one weights file, < 1 MB, for all its subnets) in under 10 MB."""
        files = list((registry.path / registry.latest()).iterdir())
        total = sum(f.stat().st_size for f in files)
        assert total < 10 * 1024 * 1024
        assert sum(f.name.endswith(".pt") and f.name.startswith("supernet") for f in files) <= 1
