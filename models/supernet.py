"""A weight-shared elastic 1-D ResNet: many model sizes from one set of weights, chosen per call.

The supernet reads the same inputs as the zoo's CNNs (``models.preprocess`` output at 125 Hz and the aux
vector of alarm type, slot mask and amplitude). It has three stages; stage ``s`` holds up to
``max(depth_list)`` pre-activation residual blocks of ``stage_widths[s]`` channels (the first block of a
stage halves the time axis and projects the skip with a 1x1 conv, later ones keep the shape and add their
normalised input, as the zoo's blocks do). A subnet is a frozen ``SubnetConfig``:

    depth   blocks per stage (the first ``depth`` of each stage run, the rest are skipped)
    width   fraction of every layer's channels (the first ``round(width * C)`` output channels)
    kernel  convolution kernel of the blocks (the centre ``kernel`` taps of the 7-tap weights)

CompOFA-style coupling: depth and width are not free; they move together along ``level_list`` (a deeper
subnet is also wider), crossed with ``kernel_list``, so 6 levels x 3 kernels = 18 subnets span the front.

Actuation without copies: ``actuate(subnet)`` returns the subnet's weights as views (slices) of the
supernet's own tensors and its own batch-norm statistics (one row per subnet of each BN's stat buffers,
recalibrated after training by ``recalibrate``); no tensor is copied, and nothing about the chosen subnet is
stored on the module, so concurrent calls for different subnets on one replica cannot see each other's
choice. ``models.subnet`` holds a subnet on its own: ``extract`` (a standalone copy) and ``SubnetMember`` (one subnet
of a shared supernet behind the ``Member`` interface).

>>> import torch
>>> net = Supernet(SupernetConfig())
>>> x, aux = torch.randn(2, 5, 2000), torch.randn(2, 15)
>>> small, large = net.subnets[0], net.subnets[-1]
>>> _ = net.eval()
>>> net(x, aux, small).shape
torch.Size([2])
>>> net(x, aux, large).shape
torch.Size([2])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .cnn import INPUT_SLOTS, N_TYPES
from .errors import InvalidFieldError


@dataclass(frozen=True)
class SubnetConfig:
    """One subnet of the supernet: blocks per stage, channel fraction, kernel taps."""

    depth: int
    width: float
    kernel: int

    @property
    def name(self) -> str:
        return f"supernet-d{self.depth}-w{int(round(self.width * 100)):03d}-k{self.kernel}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_name(cls, name: str) -> "SubnetConfig":
        try:
            _, d, w, k = name.split("-")
            return cls(int(d[1:]), int(w[1:]) / 100, int(k[1:]))
        except (ValueError, IndexError) as e:
            raise InvalidFieldError("subnet", "must be named supernet-d<depth>-w<width%>-k<kernel>", name) from e


@dataclass(frozen=True)
class SupernetConfig:
    """The supernet's architecture and its space of subnets (``level_list`` couples depth and width)."""

    inputs: str = "all"
    stage_widths: tuple[int, ...] = (24, 36, 48)
    level_list: tuple[tuple[int, float], ...] = ((1, 0.25), (1, 0.5), (2, 0.5), (2, 0.75), (3, 0.75), (3, 1.0))
    kernel_list: tuple[int, ...] = (3, 5, 7)
    stem_kernel: int = 7
    head_hidden: int = 32
    dropout: float = 0.2
    window_s: float = 16.0

    def __post_init__(self):
        if self.inputs not in INPUT_SLOTS:
            raise InvalidFieldError("inputs", "must name a slot group", self.inputs, INPUT_SLOTS)
        if not self.level_list:
            raise InvalidFieldError("level_list", "must hold at least one (depth, width) level", self.level_list)
        for d, w in self.level_list:
            if d < 1 or not 0 < w <= 1:
                raise InvalidFieldError("level_list", "must hold (depth >= 1, 0 < width <= 1) pairs", (d, w))
        if not self.kernel_list or any(int(k) != k or k < 1 or k % 2 == 0 for k in self.kernel_list):
            raise InvalidFieldError("kernel_list", "must hold odd kernel sizes >= 1", self.kernel_list)

    @property
    def slots(self) -> tuple[int, ...]:
        return INPUT_SLOTS[self.inputs]

    @property
    def max_depth(self) -> int:
        return max(d for d, _ in self.level_list)

    @property
    def max_kernel(self) -> int:
        return max(self.kernel_list)

    def subnets(self) -> list[SubnetConfig]:
        """Every subnet, smallest first (levels, then kernels)."""
        return [SubnetConfig(d, w, k) for d, w in self.level_list for k in self.kernel_list]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stage_widths"] = list(self.stage_widths)
        d["level_list"] = [list(x) for x in self.level_list]
        d["kernel_list"] = list(self.kernel_list)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SupernetConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidFieldError("config", "has unknown keys", sorted(unknown), sorted(cls.__dataclass_fields__))
        d = dict(d)
        for k in ("stage_widths", "kernel_list"):
            if k in d:
                d[k] = tuple(d[k])
        if "level_list" in d:
            d["level_list"] = tuple((int(a), float(b)) for a, b in d["level_list"])
        return cls(**d)


def channels(c_max: int, width: float) -> int:
    return max(2, int(round(c_max * width)))


class ElasticBN(nn.Module):
    """Batch norm with shared affine weights and one row of running statistics per subnet."""

    def __init__(self, c_max: int, n_subnets: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c_max))
        self.bias = nn.Parameter(torch.zeros(c_max))
        self.register_buffer("running_mean", torch.zeros(n_subnets, c_max))
        self.register_buffer("running_var", torch.ones(n_subnets, c_max))

    def views(self, c: int, k: int | None):
        stats = (None, None) if k is None else (self.running_mean[k, :c], self.running_var[k, :c])
        return self.weight[:c], self.bias[:c], *stats


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, n_subnets: int):
        super().__init__()
        self.stride = stride
        self.bn1 = ElasticBN(c_in, n_subnets)
        self.conv1 = nn.Parameter(torch.empty(c_out, c_in, kernel))
        self.bn2 = ElasticBN(c_out, n_subnets)
        self.conv2 = nn.Parameter(torch.empty(c_out, c_out, kernel))
        self.skip = nn.Parameter(torch.empty(c_out, c_in, 1)) if stride != 1 or c_in != c_out else None
        for p in (self.conv1, self.conv2, self.skip):
            if p is not None:
                nn.init.kaiming_normal_(p, nonlinearity="relu")


def _centre(w: torch.Tensor, k: int) -> torch.Tensor:
    off = (w.shape[2] - k) // 2
    return w[:, :, off : off + k]


def run_plan(plan: dict, x: torch.Tensor, stem_kernel: int, c_pad: int, drop: float = 0.0, train_bn: bool = False,
             record=None, macs: list | None = None) -> torch.Tensor:
    """The convolutional trunk of an actuated subnet -> mean and max pooled features, zero-padded to ``c_pad``
    channels each. Batch norm uses the plan's statistics, or the batch's (``train_bn`` or no statistics).
    ``macs`` ([0]) accumulates the convolutions' multiply-accumulates per window."""

    def bn(h, v):
        if record is not None:
            record(v, h)
        w, b, rm, rv = v
        return F.batch_norm(h, rm, rv, w, b, training=train_bn or rm is None, momentum=0.0)

    def conv(h, w, stride=1):
        out = F.conv1d(h, w, stride=stride, padding=w.shape[2] // 2)
        if macs is not None:
            macs[0] += out.shape[1] * out.shape[2] * w.shape[1] * w.shape[2]
        return out

    h = F.max_pool1d(conv(x, plan["stem"], 2), 2)
    for blocks in plan["stages"]:
        for b in blocks:
            a = torch.relu(bn(h, b["bn1"]))
            out = conv(a, b["conv1"], b["stride"])
            out = F.dropout(torch.relu(bn(out, b["bn2"])), drop, drop > 0)
            out = conv(out, b["conv2"])
            h = out + (a if b["skip"] is None else conv(a, b["skip"], b["stride"]))
    h = torch.relu(bn(h, plan["bn"]))
    pad = (0, c_pad - h.shape[1])
    return torch.cat([F.pad(h.mean(dim=2), pad), F.pad(h.amax(dim=2), pad)], dim=1)


class Supernet(nn.Module):
    """x [B, C, n] at 125 Hz, aux [B, 5 + 2C], subnet -> logit [B]. In training mode batch norm uses the batch's
    statistics; in eval mode the subnet's own."""

    def __init__(self, cfg: SupernetConfig):
        super().__init__()
        self.cfg = cfg
        self.subnets = cfg.subnets()
        self.index = {s: i for i, s in enumerate(self.subnets)}
        self._plans: dict[SubnetConfig, dict] = {}
        n, c_in, kmax = len(self.subnets), len(cfg.slots), cfg.max_kernel
        self.stem = nn.Parameter(torch.empty(cfg.stage_widths[0], c_in, cfg.stem_kernel))
        nn.init.kaiming_normal_(self.stem, nonlinearity="relu")
        blocks, c = [], cfg.stage_widths[0]
        for s, c_out in enumerate(cfg.stage_widths):
            stage = nn.ModuleList(_Block(c if j == 0 else c_out, c_out, kmax, 2 if j == 0 else 1, n) for j in range(cfg.max_depth))
            blocks.append(stage)
            c = c_out
        self.stages = nn.ModuleList(blocks)
        self.bn = ElasticBN(c, n)
        self.c_last = c
        n_aux = N_TYPES + 2 * c_in
        self.fc1 = nn.Linear(2 * c + n_aux, cfg.head_hidden)
        self.fc2 = nn.Linear(cfg.head_hidden, 1)

    # ---- actuation -------------------------------------------------------------------------------------
    def check_subnet(self, subnet: SubnetConfig) -> int:
        k = self.index.get(subnet)
        if k is None:
            raise InvalidFieldError("subnet", "must be one of the supernet's subnets", subnet, [s.name for s in self.subnets])
        return k

    def actuate(self, subnet: SubnetConfig, stats: bool = True) -> dict:
        """The subnet's weights and BN statistics as views of this module's tensors (no copy).

        ``stats=False`` (training): no running statistics, batch norm uses the batch's."""
        k = self.check_subnet(subnet)
        k = k if stats else None
        cfg = self.cfg
        c0 = channels(cfg.stage_widths[0], subnet.width)
        plan = {"stem": self.stem[:c0], "stages": [], "bn": self.bn.views(channels(self.c_last, subnet.width), k)}
        c = c0
        for s, stage in enumerate(self.stages):
            c_out = channels(cfg.stage_widths[s], subnet.width)
            blocks = []
            for j in range(subnet.depth):
                b = stage[j]
                blocks.append({
                    "stride": b.stride,
                    "bn1": b.bn1.views(c, k),
                    "conv1": _centre(b.conv1[:c_out, :c], subnet.kernel),
                    "bn2": b.bn2.views(c_out, k),
                    "conv2": _centre(b.conv2[:c_out, :c_out], subnet.kernel),
                    "skip": None if b.skip is None else b.skip[:c_out, :c],
                })
                c = c_out
            plan["stages"].append(blocks)
        return plan

    def plan_for(self, subnet: SubnetConfig) -> dict:
        """The subnet's actuation for inference, built once and kept: views only (no tensor is copied, and the
        views see every later in-place update of the weights and statistics). A switch is a dictionary lookup;
        the kept plans are per subnet, never one mutable "active" subnet."""
        plan = self._plans.get(subnet)
        if plan is None:
            with torch.inference_mode(False), torch.no_grad():
                plan = self.actuate(subnet)
            self._plans[subnet] = plan
        return plan

    def _apply(self, fn, *args, **kwargs):  # .to() / .double() may replace tensors: kept views would go stale
        out = super()._apply(fn, *args, **kwargs)
        self._plans = {}
        return out

    def __getstate__(self):  # pickling (Ray) would turn kept views into copies: the receiver rebuilds them
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_plans"] = {}
        return state

    def weight_views(self, subnet: SubnetConfig) -> list[torch.Tensor]:
        """Every tensor the subnet reads when serving (its kept plan: to show they share the supernet's storage)."""
        plan, out = self.plan_for(subnet), []
        out += [plan["stem"], *plan["bn"]]
        for blocks in plan["stages"]:
            for b in blocks:
                out += [*b["bn1"], b["conv1"], *b["bn2"], b["conv2"]] + ([b["skip"]] if b["skip"] is not None else [])
        return out

    # ---- forward ---------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor, plan: dict, train_bn: bool, record=None) -> torch.Tensor:
        """The pooled features [B, 2 * c_last] (zero-padded to the full width so the head's weights are shared).

        ``record(views, h)``, when given, sees every batch norm's input (``recalibrate``)."""
        return run_plan(plan, x, self.cfg.stem_kernel, self.c_last, self.cfg.dropout if self.training else 0.0, train_bn, record)

    def head(self, pooled: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.fc1(torch.cat([pooled, aux], dim=1)))
        return self.fc2(F.dropout(z, self.cfg.dropout, self.training)).squeeze(1)

    def forward(self, x: torch.Tensor, aux: torch.Tensor, subnet: SubnetConfig | None = None, plan: dict | None = None):
        """Logits of ``subnet`` (or of an already actuated ``plan``). In training mode batch norm uses the
        batch's statistics; in eval mode the subnet's own recalibrated statistics."""
        if plan is None:
            plan = self.actuate(subnet, stats=False) if self.training else self.plan_for(subnet)
        return self.head(self.features(x, plan, train_bn=self.training), aux)

    # ---- per-subnet BN statistics ------------------------------------------------------------------------
    @torch.no_grad()
    def recalibrate(self, subnet: SubnetConfig, batches) -> None:
        """Set the subnet's BN statistics to the mean / variance of its activations over ``batches`` of
        (x, aux), each pass normalising with the batch's own statistics (as once-for-all does)."""
        k = self.check_subnet(subnet)
        sums: dict[int, list] = {}

        def record(v, h):
            s = sums.setdefault(id(v[0]._base if v[0]._base is not None else v[0]), [v, 0.0, 0.0, 0])
            hd = h.double()
            s[1] = s[1] + hd.sum(dim=(0, 2))
            s[2] = s[2] + (hd ** 2).sum(dim=(0, 2))
            s[3] += h.shape[0] * h.shape[2]

        was = self.training
        self.eval()
        try:
            plan = self.actuate(subnet, stats=False)
            for x, aux in batches:
                self.features(x, plan, train_bn=True, record=record)
        finally:
            self.train(was)
        owners = {id(m.weight): m for m in self.modules() if isinstance(m, ElasticBN)}
        for key, (v, s1, s2, n) in sums.items():
            mod, c = owners[key], v[0].shape[0]
            mean = s1 / n
            mod.running_mean[k, :c] = mean.float()
            mod.running_var[k, :c] = (s2 / n - mean ** 2).clamp_min(0.0).float()
