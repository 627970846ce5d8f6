"""Ray and Ray Serve start-up, and finding a running service: the only place that starts Ray or Serve.

    ray_mod, serve_mod = start_local(num_cpus=2, http_port=8000)       # a local Ray instance + Serve
    handle = run_app(config, plan, "holmes")                            # the HOLMES application on it
    connect_service("holmes")                                           # from another process: its handle

``connect_service`` never waits on a stopped cluster: the address comes from $HOLMES_RAY_ADDRESS /
$RAY_ADDRESS or the service file ``holmes serve`` writes, and before Ray is asked to connect, the process
that wrote the file must still run and the address must accept a TCP connection within a few seconds;
otherwise ``ServiceUnavailableError`` names the file or the address (Ray itself would retry for minutes).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from models.errors import HolmesInputError

SERVICE_FILE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "holmes-icu" / "serve.json"
OBJECT_STORE_BYTES = 256 * 1024**2  # small: requests carry a few MB at most
_started_ray = False  # this process started the Ray instance it uses (and so shuts it down)


class ServiceUnavailableError(HolmesInputError):
    """The ensemble service cannot be reached; ``source`` names the file or the setting the address came from."""

    def __init__(self, source: str, address: str | None, reason: str):
        self.field, self.rule, self.value, self.options = source, reason, address, None
        self.source, self.address, self.reason = source, address, reason
        super().__init__(f"{source}: the HOLMES service at {address!r} {reason}")


def _env() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def start_local(num_cpus: float = 2, http_host: str = "127.0.0.1", http_port: int | None = 8000):
    """Start a local Ray instance sized for this machine and Serve on it; returns the (ray, serve) modules."""
    _env()
    import ray
    from ray import serve

    global _started_ray
    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES, log_to_driver=False,
                 runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
        _started_ray = True
    serve.start(http_options={"host": http_host, "port": http_port} if http_port else {"location": "NoServer"})
    return ray, serve


def join(address: str):
    """Join a running Ray cluster (checked first: an unreachable address is reported, not waited on)."""
    _check_reachable(address, "--ray-address")
    _env()
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    return ray, serve


def run_app(config, plan, app_name: str = "holmes", route_prefix: str | None = "/"):
    """Deploy the HOLMES application for ``plan`` (``deploy.app.build``) and return its handle once it is up."""
    from ray import serve

    from .app import build

    return serve.run(build(config, plan), name=app_name, route_prefix=route_prefix)


def warm_up(handle, plan, window_s: float = 16.0, batches=(1, 64), timeout_s: float = 300.0) -> dict:
    """One request per plan row and batch size before the first real one, so no verdict pays a replica's first
    call (lazy imports, allocator warm-up: several hundred ms). Returns the ms of each call."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for b in batches:
        w = rng.normal(size=(b, 5, int(round(window_s * 250)))).astype(np.float32)
        m = np.ones((b, 5), dtype=bool)
        for e in plan.ensembles:
            t = time.perf_counter()
            handle.score.remote(w, m, ["Ventricular_Tachycardia"] * b, 60_000.0, e.name).result(timeout_s=timeout_s)
            out[f"{e.name}@{b}"] = round((time.perf_counter() - t) * 1e3, 1)
    return out


def write_service_file(ray_address: str, app_name: str, http_url: str) -> Path:
    """Written by ``holmes serve`` so a consumer on this machine finds the Ray cluster holding the app."""
    SERVICE_FILE.parent.mkdir(parents=True, exist_ok=True)
    SERVICE_FILE.write_text(json.dumps({"ray_address": ray_address, "app_name": app_name, "http": http_url, "pid": os.getpid()}))
    return SERVICE_FILE


def remove_service_file() -> None:
    try:
        if json.loads(SERVICE_FILE.read_text()).get("pid") == os.getpid():
            SERVICE_FILE.unlink()
    except (OSError, ValueError):
        pass


def _check_reachable(address: str, source: str, timeout_s: float = 3.0) -> None:
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise ServiceUnavailableError(source, address, f"does not accept connections ({type(e).__name__}: {e})") from None


def service_address() -> tuple[str, str]:
    """(Ray address, where it came from). Raises ``ServiceUnavailableError`` for a stale service file or an
    address that does not answer."""
    for var in ("HOLMES_RAY_ADDRESS", "RAY_ADDRESS"):
        if os.environ.get(var):
            _check_reachable(os.environ[var], f"${var}")
            return os.environ[var], f"${var}"
    source = str(SERVICE_FILE)
    try:
        info = json.loads(SERVICE_FILE.read_text())
        address, pid = info["ray_address"], int(info["pid"])
    except FileNotFoundError:
        raise ServiceUnavailableError(source, None, "is not running: no service file (start it with `holmes serve`)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ServiceUnavailableError(source, None, f"cannot be read from the service file ({type(e).__name__}: {e})") from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise ServiceUnavailableError(source, address, f"is stale: process {pid} that wrote the file is gone") from None
    except PermissionError:
        pass  # another user's process: alive
    _check_reachable(address, source)
    return address, source


def connect_service(app_name: str = "holmes", ray_address: str | None = None):
    """The running application's handle, from another process (the stream consumer)."""
    _env()
    import ray
    from ray import serve

    if not ray.is_initialized():
        if ray_address:
            _check_reachable(ray_address, "ray_address")
        address = ray_address or service_address()[0]
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    return serve.get_app_handle(app_name)


def service_running() -> bool:
    """True when a service can be connected to (a live service file, or an address set in the environment)."""
    try:
        service_address()
    except ServiceUnavailableError:
        return False
    return True


def shutdown(app_name: str | None = None) -> None:
    """Stop Serve and Ray when this process started them; on a Ray instance it joined, only delete ``app_name``."""
    global _started_ray
    import ray
    from ray import serve

    try:
        if _started_ray or app_name is None:
            serve.shutdown()
        elif ray.is_initialized():
            serve.delete(app_name)
    finally:
        if _started_ray or app_name is None:
            ray.shutdown()
            _started_ray = False
        remove_service_file()
