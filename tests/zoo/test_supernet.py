"""The weight-shared supernet: actuation without copies, extract, per-subnet statistics, concurrency, training."""

from __future__ import annotations

import threading
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
import torch

from models.errors import InvalidFieldError
from models.subnet import SubnetMember, extract, tensor_bytes
from models.supernet import SubnetConfig, Supernet, SupernetConfig


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = Supernet(SupernetConfig())
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 5, 2000, generator=g), torch.randn(16, 15, generator=g)) for _ in range(2)]
    for s in n.subnets:
        n.recalibrate(s, batches)
    n.eval()
    return n


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(2)
    return torch.randn(6, 5, 2000, generator=g), torch.randn(6, 15, generator=g)


def test_space_is_coupled_and_sized():
    subnets = SupernetConfig().subnets()
    assert 10 <= len(subnets) <= 40
    assert len({s.name for s in subnets}) == len(subnets)
    # CompOFA coupling: depth never decreases while width grows
    levels = sorted({(s.depth, s.width) for s in subnets}, key=lambda x: (x[1], x[0]))
    assert all(a[0] <= b[0] for a, b in zip(levels, levels[1:]))
    assert SubnetConfig.from_name(subnets[3].name) == subnets[3]


def test_subnet_is_frozen_and_bad_ones_are_refused(net, inputs):
    s = net.subnets[0]
    with pytest.raises(FrozenInstanceError):
        s.depth = 3
    with pytest.raises(InvalidFieldError) as e:
        net(*inputs, SubnetConfig(depth=9, width=0.5, kernel=3))
    assert e.value.field == "subnet"
    with pytest.raises(InvalidFieldError):
        SubnetConfig.from_name("supernet-big")


def test_every_subnet_reads_views_of_the_shared_storage(net):
    storages = {t.untyped_storage().data_ptr() for t in list(net.parameters()) + list(net.buffers())}
    for s in net.subnets:
        views = net.weight_views(s)
        assert views and all(v.untyped_storage().data_ptr() in storages for v in views), s.name


def test_extract_equals_actuated_forward_for_every_subnet(net, inputs):
    with torch.inference_mode():
        for s in net.subnets:
            a = net(*inputs, s)
            b = extract(net, s)(*inputs)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_subnets_differ_and_grow(net, inputs):
    with torch.inference_mode():
        outs = [net(*inputs, s) for s in (net.subnets[0], net.subnets[-1])]
    assert not torch.allclose(*outs)
    small, large = (extract(net, s) for s in (net.subnets[0], net.subnets[-1]))
    assert tensor_bytes(small) < tensor_bytes(large)
    # one replica holding all subnets: the largest subnet's weights plus per-subnet BN statistics
    assert tensor_bytes(net) <= 1.2 * tensor_bytes(large)
    assert tensor_bytes(net) < sum(tensor_bytes(extract(net, s)) for s in net.subnets) / 4


def test_recalibrated_statistics_are_the_batch_statistics(inputs):
    torch.manual_seed(3)
    n = Supernet(SupernetConfig())
    x, aux = inputs
    s = n.subnets[7]
    n.recalibrate(s, [(x, aux)])
    n.eval()
    with torch.inference_mode():
        running = n(x, aux, s)
        batch_stats = n.head(n.features(x, n.actuate(s, stats=False), train_bn=True), aux)
    torch.testing.assert_close(running, batch_stats, rtol=0, atol=1e-4)


def test_concurrent_calls_for_different_subnets_equal_sequential(net, inputs):
    members = [SubnetMember(net, s) for s in net.subnets]
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(4, 5, 4000)).astype(np.float32)
    masks = np.ones((4, 5), bool)
    types = ["Asystole", "Tachycardia", "Ventricular_Tachycardia", "Bradycardia"]
    sequential = {m.name: m.predict_proba(windows, masks, types) for m in members}
    got: dict[str, list] = {m.name: [] for m in members}
    errors = []

    def worker(m):
        try:
            for _ in range(5):
                got[m.name].append(m.predict_proba(windows, masks, types))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, outs in got.items():
        for p in outs:
            np.testing.assert_array_equal(p, sequential[name])


def test_deps_training_runs_both_phases(tmp_path):
    """Two epochs on 24 records: the largest alone, then the sandwich; every subnet gets statistics."""
    from models.segments import SegmentCache
    from models.train_supernet import SupernetTrainConfig, fit_supernet, predict_subnets

    rng = np.random.default_rng(0)
    r, n_shift = 24, 3
    cache = SegmentCache(
        names=[f"r{i}" for i in range(r)], alarm_types=["Asystole"] * r, labels=np.arange(r) % 2,
        type_idx=np.zeros(r, np.int64), shifts_s=np.arange(n_shift, dtype=float),
        x=rng.normal(size=(r, n_shift, 5, 2000)).astype(np.float32), amp=np.zeros((r, n_shift, 5), np.float32),
        present=np.ones((r, n_shift, 5), bool), window_s=16.0)
    cfg = SupernetConfig(stage_widths=(8, 12, 16))
    tcfg = SupernetTrainConfig(epochs=2, phase1_frac=0.5, ramp_epochs=1, batch_size=8, calib_windows=16)
    before = Supernet(cfg).subnets
    net, info = fit_supernet(cfg, tcfg, cache, np.arange(r), stop_epoch=2)
    assert info["best_epoch"] == 2 and net.subnets == before
    probs = predict_subnets(net, cache, np.arange(6))
    assert set(probs) == {s.name for s in net.subnets}
    assert all(p.shape == (6,) and np.all((p >= 0) & (p <= 1)) for p in probs.values())
    # every subnet was recalibrated: no row of statistics is left at its initial (0, 1)
    assert not torch.all(net.bn.running_mean == 0, dim=1).any()


def test_kept_views_follow_later_updates(inputs):
    """A subnet's actuation is kept after its first call; recalibrating afterwards is still seen (views, not copies)."""
    torch.manual_seed(4)
    n = Supernet(SupernetConfig())
    x, aux = inputs
    s = n.subnets[5]
    n.eval()
    with torch.inference_mode():
        before = n(x, aux, s)
    n.recalibrate(s, [(x * 3.0, aux)])
    with torch.inference_mode():
        after = n(x, aux, s)
        fresh = extract(n, s)(x, aux)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh, rtol=0, atol=1e-5)


def test_registry_keeps_one_supernet_per_version(tmp_path, net, inputs):
    """Subnets of one version share one weights file, loaded once; subnets of two supernets are refused."""
    from models.registry import Registry

    reg = Registry(tmp_path / "reg")
    members = [SubnetMember(net, s) for s in net.subnets[:3]]
    prof = {"cv": {"threshold": 0.5}, "config": {}}
    entries = [{"member": m, "profile": {**prof, "config": {"supernet": net.cfg.to_dict(), "subnet": m.subnet.to_dict()}}}
               for m in members]
    v = reg.write_version(entries)
    loaded = [Registry(reg.path).load(m.name, v) for m in members]
    fresh = Registry(reg.path)
    shared = [fresh.load(m.name, v) for m in members]
    assert len({id(m.supernet) for m in shared}) == 1 and shared[0].supernet is not net
    x, aux = inputs
    with torch.inference_mode():
        torch.testing.assert_close(shared[1].supernet(x, aux, members[1].subnet), net(x, aux, members[1].subnet), rtol=0, atol=0)
    assert loaded[0].name == members[0].name
    other = Supernet(SupernetConfig())
    bad = entries[:1] + [{"member": SubnetMember(other, other.subnets[1]), "profile": entries[1]["profile"]}]
    with pytest.raises(InvalidFieldError) as e:
        reg.write_version(bad)
    assert e.value.field == "entries"
