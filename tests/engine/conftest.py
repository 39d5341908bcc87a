"""Fixtures for the engine tests (exams are immutable, so session-scoped)."""

import copy

import pytest

from .engine_testdata import FIVE_TYPES, build


@pytest.fixture
def five_doc():
    return copy.deepcopy(FIVE_TYPES)


@pytest.fixture(scope="session")
def exam5():
    return build()


@pytest.fixture(scope="session")
def make_exam():
    return build
