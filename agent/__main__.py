"""`python -m agent <dev|start|connect|console|download-files>`: LiveKit's CLI for our worker."""

from __future__ import annotations

import os
import sys
import tempfile

# Conversations run in child processes: their Prometheus metrics reach the worker's endpoint
# only through prometheus_client's multiprocess mode, which must be chosen before any metric
# is created, i.e. before livekit.agents (and our metrics module) are imported.
if os.environ.get("AGENT_PROMETHEUS_PORT") and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kyutai-agent-metrics-")

from livekit.agents import cli
from pydantic import ValidationError

from agent.settings import AgentSettings
from agent.worker import build_server
from catalog.validation import validation_problems

NEEDS_LIVEKIT = {"dev", "start", "connect"}


def main() -> None:
    try:
        settings = AgentSettings()
    except ValidationError as exc:
        sys.exit(f"agent: invalid configuration: {'; '.join(validation_problems(exc))}")

    for warning in settings.unsupported_settings():
        print(f"agent: warning: {warning}", file=sys.stderr)

    args = sys.argv[1:]
    mode = next((arg for arg in args if not arg.startswith("-")), "")
    credentials_on_command_line = any(a.startswith(("--api-key", "--api-secret")) for a in args)
    if mode in NEEDS_LIVEKIT and not credentials_on_command_line:
        problem = settings.credential_problem(devmode=mode in ("dev", "connect"))
        if problem:
            sys.exit(f"agent: {problem}")
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main()
