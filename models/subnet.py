"""A subnet of the supernet on its own: a standalone copy (``extract``) and the registry / serving member.

``extract(supernet, subnet)`` copies the subnet's tensors out into a ``SubnetModel`` whose outputs equal the
actuated forward; ``SubnetMember`` serves one subnet of a shared ``Supernet`` behind ``models.member.Member``
(many members hold the same supernet object, so loading every subnet costs one set of weights).

>>> import torch
>>> from models.supernet import Supernet, SupernetConfig
>>> net = Supernet(SupernetConfig()).eval()
>>> x, aux = torch.randn(2, 5, 2000), torch.randn(2, 15)
>>> large = net.subnets[-1]
>>> bool(torch.allclose(net(x, aux, large), extract(net, large)(x, aux), atol=1e-5))
True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .cnn import make_inputs, type_indices
from .data import FS_HZ
from .member import check_batch, check_output
from .preprocess import preprocess
from .supernet import SubnetConfig, Supernet, run_plan


class SubnetModel(nn.Module):
    """A subnet copied out of the supernet: its own tensors, the same forward (``extract``)."""

    def __init__(self, supernet: Supernet, subnet: SubnetConfig):
        super().__init__()
        self.subnet, self.stem_kernel, self.c_last = subnet, supernet.cfg.stem_kernel, supernet.c_last
        plan = supernet.actuate(subnet)
        self.tensors = nn.ParameterList()
        self._n_stats = 0

        def own(t, stat=False):
            if t is None:
                return None
            t = t.detach().clone().contiguous()
            if stat:  # running statistics are buffers, not parameters
                name = f"stat{self._n_stats}"
                self.register_buffer(name, t)
                self._n_stats += 1
                return name
            self.tensors.append(nn.Parameter(t, requires_grad=False))
            return len(self.tensors) - 1

        def own_bn(v):
            return (own(v[0]), own(v[1]), own(v[2], True), own(v[3], True))

        self._plan = {"stem": own(plan["stem"]), "bn": own_bn(plan["bn"]), "stages": [
            [{"stride": b["stride"], "bn1": own_bn(b["bn1"]), "conv1": own(b["conv1"]), "bn2": own_bn(b["bn2"]),
              "conv2": own(b["conv2"]), "skip": own(b["skip"])} for b in blocks] for blocks in plan["stages"]]}
        self.fc1 = nn.Linear(supernet.fc1.in_features, supernet.fc1.out_features)
        self.fc2 = nn.Linear(supernet.fc2.in_features, 1)
        self.fc1.load_state_dict(supernet.fc1.state_dict())
        self.fc2.load_state_dict(supernet.fc2.state_dict())
        self.eval()

    def plan(self) -> dict:
        t = self.tensors

        def get(i):
            return None if i is None else getattr(self, i) if isinstance(i, str) else t[i]

        p = self._plan
        return {"stem": get(p["stem"]), "bn": tuple(get(i) for i in p["bn"]), "stages": [
            [{"stride": b["stride"], "bn1": tuple(get(i) for i in b["bn1"]), "conv1": get(b["conv1"]),
              "bn2": tuple(get(i) for i in b["bn2"]), "conv2": get(b["conv2"]), "skip": get(b["skip"])} for b in blocks]
            for blocks in p["stages"]]}

    def forward(self, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        pooled = run_plan(self.plan(), x, self.stem_kernel, self.c_last)
        return self.fc2(torch.relu(self.fc1(torch.cat([pooled, aux], dim=1)))).squeeze(1)

    def macs(self, n_samples: int) -> int:
        """Multiply-accumulates per window of ``n_samples`` at 125 Hz (convolutions and the head)."""
        acc = [0]
        with torch.inference_mode():
            x = torch.zeros(1, self.tensors[self._plan["stem"]].shape[1], n_samples)
            run_plan(self.plan(), x, self.stem_kernel, self.c_last, macs=acc)
        return int(acc[0] + self.fc1.in_features * self.fc1.out_features + self.fc2.in_features)


def extract(supernet: Supernet, subnet: SubnetConfig) -> SubnetModel:
    """A standalone copy of ``subnet`` (its outputs equal the actuated forward within float rounding)."""
    return SubnetModel(supernet, subnet)


def tensor_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers, each storage counted once."""
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        st = t.untyped_storage()
        if st.data_ptr() not in seen:
            seen.add(st.data_ptr())
            total += st.nbytes()
    return total


# ---- the member ---------------------------------------------------------------------------------------------
class SubnetMember:
    """One subnet of a shared supernet behind the ``models.member.Member`` interface. Many members hold the
    same ``Supernet`` object: loading every subnet costs one set of weights."""

    kind = "subnet"

    def __init__(self, supernet: Supernet, subnet: SubnetConfig, name: str | None = None):
        supernet.check_subnet(subnet)
        self.supernet = supernet
        self.subnet = subnet
        self.name = name or subnet.name
        self.window_s = supernet.cfg.window_s
        self.fs_hz = FS_HZ
        self.n_samples = int(round(self.window_s * FS_HZ))

    @property
    def net(self) -> SubnetModel:  # for parameter counts (models.profile): the subnet alone
        return extract(self.supernet, self.subnet)

    @property
    def n_macs_(self) -> int:
        return self.net.macs(self.n_samples // 2)

    def predict_proba(self, windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        windows = np.asarray(windows)
        masks = np.asarray(masks, dtype=bool)
        check_batch(windows, masks, alarm_types, self.n_samples)
        if windows.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return self.proba_from_preprocessed(preprocess(windows, masks), alarm_types)

    def proba_from_preprocessed(self, prep, alarm_types: Sequence[str], subnet: SubnetConfig | None = None) -> np.ndarray:
        """P(true alarm) from ``preprocess`` output; ``subnet`` overrides this member's (SlackFit serving)."""
        x, amp, present = prep
        xt, aux = make_inputs(x, amp, present, type_indices(alarm_types), self.supernet.cfg.slots)
        with torch.inference_mode():
            p = torch.sigmoid(self.supernet(xt, aux, subnet or self.subnet)).double().numpy()
        return check_output(self.name, p, x.shape[0])

    def __repr__(self) -> str:
        return f"SubnetMember({self.name!r})"
