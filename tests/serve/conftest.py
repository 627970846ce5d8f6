"""One real Ray instance and one running HOLMES Serve application per test session.

Two real members (logistic regressions on window statistics, fitted on real CinC 2015 alarm windows)
served as separate deployments behind the ingress, with a plan of three ensembles.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _member  # noqa: E402
from _member import StatsMember  # noqa: E402

from holmes.compose.plan import EnsembleSpec, Plan  # noqa: E402
from models.data import alarm_window, load_dataset, resolve_data_dir  # noqa: E402

WINDOW_S = 16.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measured_ms(member, w, m, a) -> dict:
    out = {}
    for b in (1, 8, 64):
        idx = np.arange(b) % len(w)
        t0 = time.perf_counter()
        member.predict_proba(w[idx], m[idx], [a[i] for i in idx])
        out[str(b)] = (time.perf_counter() - t0) * 1000.0
    return out


@pytest.fixture(scope="session")
def records():
    data = resolve_data_dir()
    from models.data import list_records

    names = [i.name for i in list_records(data)][:80]
    recs, _ = load_dataset(data, names)
    return recs


@pytest.fixture(scope="session")
def batch(records):
    """64 real alarm windows (records repeated) with masks and alarm types."""
    idx = np.arange(64) % len(records)
    w = np.stack([alarm_window(records[i], WINDOW_S) for i in idx])
    m = np.stack([records[i].mask for i in idx])
    a = [records[i].alarm_type for i in idx]
    return w, m, a


@pytest.fixture(scope="session")
def members(records):
    train = records[:60]
    return {
        "stats_all": StatsMember("stats_all").fit(train, WINDOW_S),
        "stats_ecg": StatsMember("stats_ecg", slots=(0, 1), C=0.5).fit(train, WINDOW_S),
    }


@pytest.fixture(scope="session")
def plan(members, batch):
    w, m, a = batch
    lat = {n: _measured_ms(mem, w, m, a) for n, mem in members.items()}
    return Plan(
        (
            EnsembleSpec("both", ("stats_all", "stats_ecg"), threshold=0.4, auroc=0.80, score=60.0),
            EnsembleSpec("all_only", ("stats_all",), threshold=0.4, auroc=0.78, score=58.0),
            EnsembleSpec("ecg_only", ("stats_ecg",), threshold=0.4, auroc=0.70, score=50.0,
                         calibration={"method": "platt", "a": 2.0, "b": -0.5}),
        ),
        lat,
        {"overhead_ms": 10.0, "per_member_ms": 3.0, "n_workers": 2.0, "tail_factor": 1.3},
        {"beds": 64},
    )


@pytest.fixture(scope="session")
def service(members, plan):
    """(handle, base_url) of the running application; Ray and Serve shut down at the end of the session."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from deploy import ServeConfig, build

    ray.cloudpickle.register_pickle_by_value(_member)  # the test member's module is not importable by workers

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    config = ServeConfig(member_num_cpus=0.25, ingress_num_cpus=0.25, window_s=WINDOW_S, max_request_windows=128)
    handle = serve.run(build(config, plan, members), name="holmes_test", route_prefix="/")
    yield handle, f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()
