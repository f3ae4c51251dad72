"""Shared fixtures for integration tests: modules run as Ansible runs them, against real engines."""

from __future__ import annotations

import pytest

from module_runner import run_module


@pytest.fixture(scope="session")
def module_runner():
    return run_module
