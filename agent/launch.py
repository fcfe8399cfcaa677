"""What starting the worker does before building it, whichever CLI starts it.

`python -m agent …` (agent/__main__.py, livekit-agents' Python CLI) and LiveKit's own CLI
(`lk agent dev|start` runs `python -m livekit.agents start src/agent.py`, which imports
agent/server.py) both choose the metrics mode first and end with one `agent: …` line when the
configuration is wrong, before anything connects.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence

from pydantic import ValidationError

from agent.settings import AgentSettings
from catalog.validation import validation_problems

# The modes that connect to LiveKit: `python -m agent dev|start|connect`,
# `python -m livekit.agents start [--dev]`.
NEEDS_LIVEKIT = {"dev", "start", "connect"}


def use_multiprocess_metrics() -> None:
    """Conversations run in child processes: their Prometheus metrics reach the worker's endpoint
    only through prometheus_client's multiprocess mode, which a process chooses from this
    variable before it creates its first metric. Call it before livekit.agents (and our metrics
    module) are imported; the job processes inherit it."""
    if os.environ.get("AGENT_PROMETHEUS_PORT") and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kyutai-agent-metrics-")


def checked_settings(args: Sequence[str]) -> AgentSettings:
    """The worker's settings, or the process ends saying what is wrong.

    `args` are the command's arguments: `dev|start|connect|console …` for `python -m agent`,
    `start <file> [--dev] …` or `console <file> …` for `python -m livekit.agents`."""
    try:
        settings = AgentSettings()
    except ValidationError as exc:
        sys.exit(f"agent: invalid configuration: {'; '.join(validation_problems(exc))}")

    for warning in settings.unsupported_settings():
        print(f"agent: warning: {warning}", file=sys.stderr)

    mode = next((arg for arg in args if not arg.startswith("-")), "")
    devmode = mode in ("dev", "connect") or "--dev" in args
    credentials_on_command_line = any(a.startswith(("--api-key", "--api-secret")) for a in args)
    if mode in NEEDS_LIVEKIT and not credentials_on_command_line:
        problem = settings.credential_problem(devmode=devmode)
        if problem:
            sys.exit(f"agent: {problem}")
    return settings
