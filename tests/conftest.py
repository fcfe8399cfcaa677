"""Shared pytest configuration: where test logs and artifacts go, and what a missing
prerequisite of the harness means (a skip)."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from harness.errors import PrerequisiteMissing

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

# Models and torch on CI: no compiler toolchain needed, deterministic CPU runs.
os.environ.setdefault("NO_TORCH_COMPILE", "1")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Logs of servers started by tests, screenshots, plots: kept after the run for inspection."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# The harness raises PrerequisiteMissing when this machine lacks a program (redis-server, …):
# the test that needs it is skipped, whether it was its fixture or its body that asked.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except PrerequisiteMissing as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except PrerequisiteMissing as exc:
        pytest.skip(str(exc))
