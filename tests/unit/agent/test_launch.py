"""Both CLIs check the settings the same way before building the worker: `python -m agent …`
and LiveKit's thin CLI (`python -m livekit.agents start src/agent.py [--dev]`, what `lk agent
dev|start` runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.launch import checked_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def dev_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    monkeypatch.delenv("KYUTAI_DEV_MODE", raising=False)


@pytest.mark.parametrize(
    "args",
    [["dev"], ["connect", "--room", "r"], ["start", "src/agent.py", "--dev"]],
)
@pytest.mark.usefixtures("dev_keys")
def test_dev_keys_are_accepted_in_dev_mode(args: list[str]) -> None:
    assert checked_settings(args).livekit_api_key == "devkey"


@pytest.mark.parametrize("args", [["start"], ["start", "src/agent.py"]])
@pytest.mark.usefixtures("dev_keys")
def test_dev_keys_are_refused_in_production_mode(args: list[str]) -> None:
    with pytest.raises(SystemExit, match="only accepted in dev mode"):
        checked_settings(args)


def test_the_lk_entry_point_reports_missing_credentials() -> None:
    # What `lk agent start` runs, without lk: src/agent.py imports agent/server.py, whose
    # settings check ends the process before anything connects.
    proc = subprocess.run(
        [sys.executable, "-m", "livekit.agents", "start", "src/agent.py"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith(
        "agent: LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set"
    ), proc.stderr[-2000:]
