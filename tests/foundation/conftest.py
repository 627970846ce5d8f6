import shutil
from pathlib import Path

import numpy as np
import pytest

from models.data import SHARED_DATA, load_record, resolve_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = resolve_data_dir()
    # The real data is part of CI: fail loudly when it is missing, never skip.
    assert (d / "RECORDS").is_file(), f"CinC 2015 data missing at {d} (expected {SHARED_DATA})"
    return d


@pytest.fixture(scope="session")
def record(data_dir):
    return lambda name: load_record(data_dir, name)


def _copy_records(src: Path, dst: Path, names):
    (dst / "records").mkdir(parents=True, exist_ok=True)
    for n in names:
        for ext in (".hea", ".mat"):
            shutil.copy(src / "records" / f"{n}{ext}", dst / "records" / f"{n}{ext}")


def _write_record(folder: Path, name: str, signal: np.ndarray, sig_names, units, fs=250, comments=("Asystole", "False alarm")):
    import wfdb

    (folder / "records").mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=list(units), sig_name=list(sig_names), p_signal=signal, fmt=["16"] * len(sig_names),
                adc_gain=[200.0] * len(sig_names), baseline=[0] * len(sig_names), comments=list(comments),
                write_dir=str(folder / "records"))


@pytest.fixture(scope="session")
def copy_records():
    """Copy real records (header + signal file) into a test folder."""
    return _copy_records


@pytest.fixture(scope="session")
def write_record():
    """Write a small WFDB record (synthetic defects: wrong fs, NaN channel, renamed channel)."""
    return _write_record
