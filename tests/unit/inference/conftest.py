"""Tiny checkpoints shared by the inference unit tests (generated once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.tiny import ensure_tiny_checkpoints

    cache = tmp_path_factory.mktemp("kyutai-tiny")
    ensure_tiny_checkpoints(cache)
    return cache
