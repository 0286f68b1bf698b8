"""Shared test helpers: where the real fixtures live (copied from the project's shared data)."""
import os
import pathlib

import pytest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"
LEGACY = FIXTURES / "legacy"
PREPROCESS = FIXTURES / "preprocess"


def make_tiny_h5(directory):
    """A small preprocess-style HDF5 cut from the golden data: 710 train tokens (7 batches
    of 2 x 50), 250 val and 250 test tokens, for fast training tests."""
    import h5py
    path = pathlib.Path(directory) / "tiny.h5"
    with h5py.File(GOLDEN / "shakespeare200k.h5", "r") as f:
        splits = {"train": f["train"][:710], "val": f["val"][:250], "test": f["test"][:250]}
    with h5py.File(path, "w") as f:
        for name, data in splits.items():
            f.create_dataset(name, data=data)
    return path


@pytest.fixture
def fixtures():
    return FIXTURES


def pytest_configure(config):
    # Keep the suite's BLAS use polite on a 2-core machine and repeatable.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
