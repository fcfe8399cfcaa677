"""Shared pytest configuration: where test logs and artifacts go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

# Models and torch on CI: no compiler toolchain needed, deterministic CPU runs.
os.environ.setdefault("NO_TORCH_COMPILE", "1")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Logs of servers started by tests, screenshots, plots: kept after the run for inspection."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
