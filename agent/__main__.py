"""`python -m agent <dev|start|connect|console|download-files>`: LiveKit's CLI for our worker."""

from __future__ import annotations

import sys

from livekit.agents import cli
from pydantic import ValidationError

from .settings import AgentSettings
from .worker import build_server

NEEDS_LIVEKIT = {"dev", "start", "connect"}


def main() -> None:
    try:
        settings = AgentSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        sys.exit(f"agent: invalid configuration: {problems}")

    mode = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "")
    if mode in NEEDS_LIVEKIT:
        problem = settings.credential_problem(devmode=mode in ("dev", "connect"))
        if problem:
            sys.exit(f"agent: {problem}")
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main()
