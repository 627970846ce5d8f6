"""The whole service's configuration (``deploy/holmes.yaml``): one validated object, unknown keys refused.

    cfg = HolmesConfig.load("deploy/holmes.yaml", overrides={"kafka.bootstrap_servers": "broker:9092"})

Sections: ``service`` (the Ray Serve application: ``deploy.config.ServeConfig``), ``ray``, ``http``, ``kafka``
(none given: the embedded broker), ``stream`` (the consumer: routine scorer, verdict lane, windows, deadlines,
risk alarm). Relative paths are read from the project root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.errors import InvalidFieldError

from .config import ServeConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = PROJECT_ROOT / "deploy" / "holmes.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RayConfig(_Strict):
    address: str | None = Field(None, description="join this running Ray cluster; None: start a local one")
    num_cpus: float = Field(2, gt=0, description="CPUs of the local Ray instance")


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="HTTP port of Serve (0: no HTTP proxy)")


class KafkaConfig(_Strict):
    bootstrap_servers: str | None = Field(None, description="HOST:PORT[,...] of a Kafka cluster; None: the embedded broker")
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = Field(None, description="or $HOLMES_KAFKA_PASSWORD")
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    topic_prefix: str | None = None


class RiskConfig(_Strict):
    raise_at: float = Field(0.7, gt=0, lt=1)
    clear_below: float = Field(0.5, gt=0, lt=1)
    hold_s: float = Field(10.0, ge=0)


class StreamConfig(_Strict):
    routine_scorer: Literal["cascade", "serve", "features", "incremental"] = Field(
        "incremental", description="routine windows: features-typed on incremental per-patient features (models.incremental: "
                                   "each sample filtered once, 2,000 beds on 2 cores), the best registry feature model in "
                                   "process on each whole window, the cascade (escalating to the service), or the service")
    incremental_dir: str | None = Field(None, description="the incremental model's folder (None: artifacts/incremental)")
    cascade_dir: str | None = Field(None, description="fitted cascades folder (None: $HOLMES_CASCADE or artifacts/cascade)")
    cascade_version: str | None = None
    verdict_deadline_ms: float = Field(1000.0, gt=0, description="a verdict is due this long after its alarm's sample time")
    deadline_ms: float = Field(1000.0, gt=0, description="a routine window is due this long after its last sample")
    window_s: float = Field(16.0, gt=0)
    hop_s: float = Field(1.0, gt=0)
    group_id: str = "holmes-scorer"
    max_batch: int = Field(512, ge=1, le=4096, description=(
        "routine windows scored per call: under load the batches grow to it, so the service's per-call cost (a Ray handle "
        "call per member, ~10 ms of CPU each) is shared by more windows; each batch also delays the next tick's verdicts"))
    routine_hold_ms: float = Field(0.0, ge=0, description=(
        "routine windows wait until the oldest has been ready this long (or max_batch are ready): fewer, larger batches "
        "and service calls at ward loads; verdicts never wait. 200 ms halved the service calls and cut CPU per window by "
        "15 % at 375-500 beds on 2 cores, but raised routine p99 from 0.74 to 1.27 s (bench/serve_sweep.py --suffix _hold200)"))
    score_workers: int = Field(1, ge=1, le=16, description=(
        "processes scoring each routine batch of the features scorer (this one included): the consumer process is one "
        "Python process whose feature extraction holds the GIL, so past ~1,000 beds on 2 cores it is the bound"))
    consumers: int = Field(1, ge=1, le=8, description=(
        "consumer processes of holmes serve (this one included), one group: each owns a share of the partitions and "
        "scores its patients' windows, so the one consumer thread is no longer the bound (deploy/holmes.yaml: 2)"))
    fetch_min_bytes: int = Field(1, ge=1, le=16 * 2**20, description=(
        "a consumer's fetch waits (up to 50 ms) until this many bytes are there: 1 answers at once; 64 KiB (~17 chunks) "
        "means fewer, larger fetches; at 2,000 beds with 2 consumers it saved no CPU (0.95 ms/window both) and p99 was "
        "1.37 s against 1.02 s (bench/serve_beds.py --tag mc_2000_c2[_fetch64k])"))
    max_pending: int = Field(8192, ge=64, le=1_000_000, description=(
        "windows cut and waiting to be scored (~80 KB each) at which a consumer stops polling (and below which it polls "
        "no more records than there is room for): the broker keeps the backlog, not the consumer's memory (saturated at "
        "3,000 beds without it: 4.9-5.6 GiB per consumer process; with it 2.1-2.2 GiB)"))
    verdict_blend: bool | None = Field(None, description=(
        "verdicts as the mean of the plan row and features-typed-inc on the patient's streamed state, true at >= 1/6 "
        "(streams.verdict_blend.VerdictBlend; nested CV, 5 fold seeds: +1.13 +/- 0.89 over the row's model alone, "
        "bench/feature_sets.py). None: on when routine_scorer is incremental (it owns that state); true with another "
        "routine scorer is refused"))
    verdict_shift: bool = Field(True, description=(
        "a blended verdict also averages the incremental model over the patient's windows ending 1..K s before the alarm "
        "(the plan row over 1..k_row s; 0 in the served fit, so the service scores the alarm window alone), through a "
        "calibration map (K, k_row and the map from verdict_shift_path, models.verdict_shift; nested CV, 5 fold seeds: "
        "+0.96 +/- 1.00 over the unshifted blend, ECE 0.038, bench/shift_nested.py). Applies when verdict_blend is on"))
    verdict_gate: bool = Field(True, description=(
        "a shifted verdict whose alarm window misses its alarm's definition by the fitted margin (e.g. a VT alarm whose "
        "fastest 5 beats on both ECG leads are under 80 bpm) is capped below the cut (models.definition_gate, fitted with "
        "the shift and kept in its file; nested CV, 5 fold seeds: +1.23 +/- 0.24 over the shift alone, "
        "bench/definition_gates.py). Applies when verdict_shift is on and its file has a gate"))
    verdict_shift_path: str | None = Field(None, description=(
        "the fitted shift (python -m models.verdict_shift); None: artifacts/incremental/verdict-shift.json"))
    verdict_bag: bool | None = Field(None, description=(
        "the published verdict is the mean of 5 whole verdict pipelines (both sides' models, K, map, gate, VT re-scorer), "
        "each fitted on the records outside one of the registry's folds, computed in the verdict lane from the alarm "
        "window's batch features and the patient's incremental state (models.verdict_bag; nested, bench/verdict_bag.py: "
        "83.52 +/- 0.49 over the sets of 5 fold seeds, +1.36 +/- 0.56 over the single pipeline). The single pipeline "
        "(the plan row's answer, shift and gate) still answers every alarm and is published when the bag fails or would "
        "be late. None: on when verdict_blend, verdict_shift and verdict_gate are on (each member is that shifted, gated "
        "procedure, fitted on 16 s windows 1 s apart); true with any of them off, or other windows, is refused"))
    verdict_bag_path: str | None = Field(None, description=(
        "the fitted bag's folder (python -m models.verdict_bag); None: artifacts/verdict-bag"))
    risk: RiskConfig = RiskConfig()

    def bag_on(self) -> bool:
        """Whether the verdict lane publishes the bag: ``verdict_bag``, or when None, the shifted, gated blend is on with
        16 s windows 1 s apart (``holmes serve`` refuses true without them)."""
        if self.verdict_bag is not None:
            return bool(self.verdict_bag)
        return self.verdict_blend is not False and self.verdict_shift and self.verdict_gate and self.window_s == 16.0 and self.hop_s == 1.0


class HolmesConfig(_Strict):
    app_name: str = "holmes"
    service: ServeConfig = ServeConfig(registry_dir="artifacts/registry", plan_path="deploy/plan.json")
    ray: RayConfig = RayConfig()
    http: HttpConfig = HttpConfig()
    kafka: KafkaConfig = KafkaConfig()
    stream: StreamConfig = StreamConfig()

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "HolmesConfig":
        try:
            return cls.model_validate(d or {})
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err.get("loc", ())) or "config"
            raise InvalidFieldError(f"{source}: {field}", err.get("msg", "is invalid").lower(), err.get("input")) from None

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> "HolmesConfig":
        """The YAML at ``path`` (default ``deploy/holmes.yaml``) with dotted ``overrides`` (None values skipped)."""
        import yaml

        path = Path(path) if path else DEFAULT_PATH
        if not path.is_file():
            raise InvalidFieldError("--config", "must be an existing YAML file", str(path))
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise InvalidFieldError(str(path), "must be valid YAML", str(e)[:200]) from None
        if not isinstance(d, dict):
            raise InvalidFieldError(str(path), "must be a mapping of sections", type(d).__name__)
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            node = d
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise InvalidFieldError(key, "must name a setting inside a section", value)
            node[leaf] = value
        return cls.from_dict(d, str(path))

    def resolved(self, path: str | None) -> str | None:
        """A path of the config, relative ones read from the project root."""
        if path is None:
            return None
        p = Path(path)
        return str(p if p.is_absolute() else PROJECT_ROOT / p)
