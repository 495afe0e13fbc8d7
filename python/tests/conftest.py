"""Shared fixtures of the kvq package tests (run with pytest from the repository root)."""
import pytest

import kvq.golden

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def golden():
    return kvq.golden.load()
