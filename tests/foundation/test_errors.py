"""Typed input errors survive a process pool: a worker's error reaches the parent as itself, field and value intact."""

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from models.errors import InvalidFieldError, RecordError


def _raise(kind: str):
    if kind == "field":
        raise InvalidFieldError("features", "must have shape (4, 99)", (4, 101), options=["99 columns"])
    raise RecordError("v131l", "fs_hz", "must be 250", 360)


def test_typed_errors_pickle_with_their_fields():
    e = pickle.loads(pickle.dumps(InvalidFieldError("fs_hz", "must be 250 for this model", 360.0, options=[250])))
    assert (e.field, e.rule, e.value, e.options) == ("fs_hz", "must be 250 for this model", 360.0, [250])
    assert str(e) == "fs_hz must be 250 for this model, got 360.0 (valid: 250)"
    r = pickle.loads(pickle.dumps(RecordError("a103l", "n_samples", "must cover the alarm", 10)))
    assert (r.record, r.field, r.value) == ("a103l", "n_samples", 10) and str(r).startswith("record a103l:")


@pytest.mark.parametrize("kind, cls", [("field", InvalidFieldError), ("record", RecordError)])
def test_an_error_raised_in_a_worker_reaches_the_parent_typed(kind, cls):
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(cls) as e:
            pool.submit(_raise, kind).result()
    assert e.value.field == ("features" if kind == "field" else "fs_hz")
