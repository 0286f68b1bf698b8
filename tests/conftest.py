"""Shared test helpers: where the real fixtures live (copied from the project's shared data)."""
import os
import pathlib

import pytest

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"
LEGACY = FIXTURES / "legacy"
PREPROCESS = FIXTURES / "preprocess"


@pytest.fixture
def fixtures():
    return FIXTURES


def pytest_configure(config):
    # Keep the suite's BLAS use polite on a 2-core machine and repeatable.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
