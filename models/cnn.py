"""The 1-D ResNet family of the model zoo, and the ``CNNMember`` that serves one of them.

A member is named ``cnn-<inputs>-w<width>-d<depth>`` and varies along three axes:

    inputs  which slots it reads: "ecg" (ECG1, ECG2), "ecgpulse" (+ ABP, PPG) or "all" (+ RESP)
    width   channels of the stem and the first stage (later stages grow by 1.5x per stage)
    depth   residual blocks, each halving the time axis

Network: stem conv (k=7, stride 2) and max-pool 2 -> ``depth`` pre-activation residual blocks (two k=7 convs, stride 2,
1x1 projection on the skip) -> global mean and max pooling -> a small head that also takes the alarm type
(one-hot), the slot presence mask and the per-slot amplitude feature of ``models.preprocess``.

>>> import numpy as np
>>> m = CNNMember(CNNConfig(inputs="ecg", width=8, depth=2))
>>> w = np.random.default_rng(0).normal(size=(2, 5, 4000)).astype(np.float32)
>>> p = m.predict_proba(w, np.ones((2, 5), bool), ["Asystole", "Tachycardia"])
>>> p.shape, bool(((p >= 0) & (p <= 1)).all())
((2,), True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .data import ALARM_TYPES, FS_HZ, N_SLOTS
from .errors import InvalidFieldError
from .member import check_batch, check_output
from .preprocess import OUT_FS_HZ, preprocess

INPUT_SLOTS: dict[str, tuple[int, ...]] = {"ecg": (0, 1), "ecgpulse": (0, 1, 2, 3), "all": (0, 1, 2, 3, 4)}
N_TYPES = len(ALARM_TYPES)


@dataclass(frozen=True)
class CNNConfig:
    """Architecture of one zoo member (frozen: a member's identity)."""

    inputs: str = "all"
    width: int = 16
    depth: int = 3
    kernel: int = 7
    window_s: float = 16.0
    head_hidden: int = 32
    dropout: float = 0.2

    def __post_init__(self):
        if self.inputs not in INPUT_SLOTS:
            raise InvalidFieldError("inputs", "must name a slot group", self.inputs, INPUT_SLOTS)
        for field, v, lo in (("width", self.width, 2), ("depth", self.depth, 1), ("kernel", self.kernel, 1)):
            if int(v) != v or v < lo:
                raise InvalidFieldError(field, f"must be an integer >= {lo}", v)
        if self.window_s <= 0 or (self.window_s * FS_HZ) % 2:
            raise InvalidFieldError("window_s", "must be > 0 with an even sample count at 250 Hz", self.window_s)

    @property
    def name(self) -> str:
        return f"cnn-{self.inputs}-w{self.width}-d{self.depth}"

    @property
    def slots(self) -> tuple[int, ...]:
        return INPUT_SLOTS[self.inputs]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CNNConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidFieldError("config", "has unknown keys", sorted(unknown), sorted(cls.__dataclass_fields__))
        return cls(**d)


class _Block(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv(stride 2)-BN-ReLU-dropout-conv, 1x1 strided skip."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float):
        super().__init__()
        pad = kernel // 2
        self.bn1 = nn.BatchNorm1d(c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=2, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False)
        self.skip = nn.Conv1d(c_in, c_out, 1, stride=2, bias=False)

    def forward(self, x):
        h = torch.relu(self.bn1(x))
        out = self.conv1(h)
        out = self.conv2(self.drop(torch.relu(self.bn2(out))))
        return out + self.skip(h)


class ResNet1d(nn.Module):
    """x [B, C, n] at 125 Hz, aux [B, 5 + 2*5] (alarm one-hot, mask, amplitude) -> logit [B]."""

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        c_in = len(cfg.slots)
        self.stem = nn.Sequential(
            nn.Conv1d(c_in, cfg.width, cfg.kernel, stride=2, padding=cfg.kernel // 2, bias=False), nn.MaxPool1d(2)
        )
        blocks, c = [], cfg.width
        for i in range(cfg.depth):
            c_out = int(round(cfg.width * 1.5 ** ((i + 1) // 2)))
            blocks.append(_Block(c, c_out, cfg.kernel, cfg.dropout))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm1d(c)
        n_aux = N_TYPES + 2 * c_in
        self.head = nn.Sequential(
            nn.Linear(2 * c + n_aux, cfg.head_hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.head_hidden, 1)
        )

    def forward(self, x, aux):
        h = torch.relu(self.bn(self.blocks(self.stem(x))))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2), aux], dim=1)
        return self.head(pooled).squeeze(1)


def make_inputs(x: np.ndarray, amp: np.ndarray, present: np.ndarray, type_idx: np.ndarray, slots: Sequence[int]):
    """Tensors for ``ResNet1d`` from ``preprocess`` output: (x [B, C, n], aux [B, 5 + 2C])."""
    slots = list(slots)
    onehot = np.eye(N_TYPES, dtype=np.float32)[np.asarray(type_idx, dtype=np.int64)]
    m = np.asarray(present, dtype=np.float32)[:, slots]
    aux = np.concatenate([onehot, m, amp[:, slots]], axis=1)
    return torch.from_numpy(np.ascontiguousarray(x[:, slots])), torch.from_numpy(np.ascontiguousarray(aux, dtype=np.float32))


def type_indices(alarm_types: Sequence[str]) -> np.ndarray:
    return np.array([ALARM_TYPES.index(a) for a in alarm_types], dtype=np.int64)


class CNNMember:
    """A trained zoo CNN behind the ``models.member.Member`` interface (stateless per request)."""

    kind = "cnn"

    def __init__(self, config: CNNConfig, net: ResNet1d | None = None, name: str | None = None):
        self.config = config
        self.name = name or config.name
        self.net = net if net is not None else ResNet1d(config)
        self.net.eval()
        self.window_s = config.window_s
        self.fs_hz = FS_HZ
        self.n_samples = int(round(config.window_s * FS_HZ))

    def predict_proba(self, windows: np.ndarray, masks: np.ndarray, alarm_types: Sequence[str]) -> np.ndarray:
        windows = np.asarray(windows)
        masks = np.asarray(masks, dtype=bool)
        check_batch(windows, masks, alarm_types, self.n_samples)
        if windows.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return self.proba_from_preprocessed(preprocess(windows, masks), alarm_types)

    def proba_from_preprocessed(self, prep: tuple[np.ndarray, np.ndarray, np.ndarray], alarm_types: Sequence[str]) -> np.ndarray:
        """P(true alarm) from ``preprocess(windows, masks)`` output, which is the same for every zoo CNN: an
        ensemble preprocesses a batch once and hands it to each member."""
        x, amp, present = prep
        xt, aux = make_inputs(x, amp, present, type_indices(alarm_types), self.config.slots)
        with torch.inference_mode():
            p = torch.sigmoid(self.net(xt, aux)).double().numpy()
        return check_output(self.name, p, x.shape[0])

    def state_dict(self) -> dict:
        return self.net.state_dict()

    @classmethod
    def from_state_dict(cls, config: CNNConfig, state: dict, name: str | None = None) -> "CNNMember":
        net = ResNet1d(config)
        net.load_state_dict(state)
        return cls(config, net, name)

    def __repr__(self) -> str:
        return f"CNNMember({self.name!r}, {OUT_FS_HZ} Hz input, window_s={self.window_s})"
