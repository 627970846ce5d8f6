"""Stream tests run against a real embedded broker (one per session) and real CinC 2015 records."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from models.data import list_records, load_dataset, resolve_data_dir
from streams.testing import broker_fixture

sys.path.insert(0, str(Path(__file__).parent))
from members import StatsMember  # noqa: E402

kafka_broker = broker_fixture("session")

# replayed in the stream tests: different alarm types, 's' (300 s) and 'l' (330 s) records
STREAM_RECORDS = 5
TRAIN_RECORDS = 80


@pytest.fixture(scope="session")
def data_dir():
    return resolve_data_dir()


@pytest.fixture(scope="session")
def records(data_dir):
    infos = list_records(data_dir)
    recs, skipped = load_dataset(data_dir, [i.name for i in infos[: TRAIN_RECORDS + 120]])
    assert not skipped
    return recs


@pytest.fixture(scope="session")
def stream_records(records):
    """A few records of distinct alarm types, never used to fit the test member."""
    seen, out = set(), []
    for r in records[TRAIN_RECORDS:]:
        if r.alarm_type not in seen:
            seen.add(r.alarm_type)
            out.append(r)
    return out[:STREAM_RECORDS]


@pytest.fixture(scope="session")
def member(records):
    return StatsMember().fit(records[:TRAIN_RECORDS])


@pytest.fixture(scope="session")
def member_path(member, tmp_path_factory):
    import pickle

    p = tmp_path_factory.mktemp("member") / "stats_member.pkl"
    p.write_bytes(pickle.dumps(member))
    return p
