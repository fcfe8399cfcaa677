"""`bench.loadtest --spawn-stack` runs the dev stack, and says how it differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.loadtest import SLOTS, parse_args, stack_changes
from harness.worker import tiny_stack_env

ROOT = Path(__file__).resolve().parents[3]


def test_the_dev_stack_and_the_harness_run_the_shipped_turn_defaults() -> None:
    script = (ROOT / "scripts" / "dev-stack.sh").read_text()
    env = tiny_stack_env("ws://inference", "key", "http://llm")
    for name in ("KYUTAI_TURN_DETECTION", "KYUTAI_VAD_MIN_SILENCE_S"):
        assert name not in script and name not in env


def test_spawn_stack_changes_are_sized_for_the_largest_n() -> None:
    small = {c.setting: c.value for c in stack_changes(4)}
    assert small[SLOTS].startswith("8 ")
    assert small["KYUTAI_SILENCE_TIMEOUT_S"] == "60"
    assert "AGENT_MAX_JOBS" not in small  # the worker's default is enough
    big = {c.setting: c.value for c in stack_changes(20, slots=24)}
    assert big[SLOTS].startswith("24 ") and big["AGENT_MAX_JOBS"] == "20"
    assert all(c.why and c.dev_stack for c in stack_changes(None))


def test_help_lists_the_changes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for change in stack_changes(None):
        assert f"{change.setting} = {change.value}" in shown
