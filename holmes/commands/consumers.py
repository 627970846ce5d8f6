"""The extra consumer processes of ``holmes serve --consumers N``: started, relayed, restarted when one ends, stopped."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time


class ExtraConsumers:
    """``stream.consumers - 1`` child processes (``holmes serve --consumer-only``) joined to this service's Ray instance and
    broker, in the same consumer group: Kafka gives each a share of the partitions (a patient's waveforms and alarms
    share a partition number, so one process owns all of a patient). Their output is relayed with a ``[consumer i]``
    prefix; ``ready()`` is true once each has printed its ready line (it owns partitions: the group has settled).

    Once the service is ready, ``supervise()`` restarts a child that ends (a crash, an out-of-memory kill): the group
    first hands its partitions to the others, which re-read them from the last commit, so nothing is lost; the new
    child then takes its share back. Restarts wait ``RESTART_BACKOFF_S`` (doubling, up to 30 s, while a child keeps
    ending within ``STABLE_S`` of its start) and are listed in ``restarts`` (the service's metrics)."""

    RESTART_BACKOFF_S = 1.0
    STABLE_S = 60.0

    def __init__(self, cfg, n: int, bootstrap: str, ray_address: str, metrics_json: str | None, command: list[str] | None = None):
        import os
        import tempfile

        import yaml

        d = cfg.model_dump(mode="json")
        d["kafka"]["bootstrap_servers"], d["ray"]["address"], d["stream"]["consumers"] = bootstrap, ray_address, 1
        fd, self.config_path = tempfile.mkstemp(prefix="holmes-consumer-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(d, f)
        self.metrics = [f"{metrics_json}.consumer{i}.json" if metrics_json else None for i in range(1, n)]
        self.command = command or [sys.executable, "-m", "holmes.cli", "serve", "--config", self.config_path, "--consumer-only"]
        # per child i (1..n-1, at i - 1): its process, its ready line seen, when it was started; filled by _spawn
        self.procs, self._ready, self.started = [None] * (n - 1), [None] * (n - 1), [0.0] * (n - 1)
        self.restarts: list[dict] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        for i in range(1, n):
            self._spawn(i)

    def _spawn(self, i: int) -> None:
        import subprocess

        m = self.metrics[i - 1]
        proc = subprocess.Popen(self.command + (["--metrics-json", m] if m else []), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        ready = threading.Event()
        threading.Thread(target=self._relay, args=(i, proc, ready), daemon=True).start()
        self.procs[i - 1], self._ready[i - 1], self.started[i - 1] = proc, ready, time.monotonic()

    @staticmethod
    def _relay(i: int, proc, ready: threading.Event) -> None:
        for line in proc.stdout:
            if line.startswith("[serve] ready"):
                ready.set()
            print(f"[consumer {i}] {line.rstrip()}", flush=True)

    def ready(self) -> bool:
        return all(e.is_set() for e in self._ready)

    def failed(self) -> list[int]:
        """Exit codes of the children that ended."""
        return [p.returncode for p in self.procs if p.poll() is not None]

    def supervise(self, poll_s: float = 0.5) -> threading.Thread:
        """Restart, from now on, each child that ends before ``stop``; the watching thread (a daemon)."""

        def watch():
            backoff = [self.RESTART_BACKOFF_S] * len(self.procs)
            while not self._stopping.wait(poll_s):
                for i, proc in enumerate(self.procs, start=1):
                    rc = proc.poll()
                    if rc is None or self._stopping.is_set():
                        continue
                    ran_s = time.monotonic() - self.started[i - 1]
                    if ran_s >= self.STABLE_S:
                        backoff[i - 1] = self.RESTART_BACKOFF_S
                    wait_s = backoff[i - 1]
                    print(f"[serve] consumer {i} ended (exit code {rc}) after {ran_s:.0f} s: its partitions go to the others "
                          f"of the group; restarting it in {wait_s:g} s", flush=True)
                    if self._stopping.wait(wait_s):
                        return
                    with self._lock:
                        if self._stopping.is_set():
                            return
                        self._spawn(i)
                    self.restarts.append({"consumer": i, "exit_code": rc, "ran_s": round(ran_s, 1), "unix_s": round(time.time(), 3),
                                          "backoff_s": wait_s})
                    backoff[i - 1] = min(2 * wait_s, 30.0)

        t = threading.Thread(target=watch, daemon=True, name="holmes-consumer-supervisor")
        t.start()
        return t

    def stop(self, timeout_s: float = 60.0) -> list[dict]:
        """SIGTERM each (it publishes and commits what it scored, then leaves the group); their final metrics."""
        import os
        import subprocess

        with self._lock:
            self._stopping.set()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        out = []
        for i, (path, p) in enumerate(zip(self.metrics, self.procs), start=1):
            m = {"rc": p.returncode, "restarts": [r for r in self.restarts if r["consumer"] == i]}
            if path and os.path.isfile(path):
                with open(path) as f:
                    m.update(json.load(f))
            out.append(m)
        if os.path.exists(self.config_path):
            os.unlink(self.config_path)
        return out
