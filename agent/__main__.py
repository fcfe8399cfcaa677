"""`python -m agent <dev|start|connect|console|download-files>`: livekit-agents' Python CLI for
our worker. LiveKit's own CLI runs the same worker: `lk agent dev|start` (see agent/server.py)."""

from __future__ import annotations

import sys

from agent.launch import checked_settings, use_multiprocess_metrics

use_multiprocess_metrics()  # before livekit.agents (and our metrics module) are imported

from livekit.agents import cli  # noqa: E402

from agent.worker import build_server  # noqa: E402


def main() -> None:
    cli.run_app(build_server(checked_settings(sys.argv[1:])))


if __name__ == "__main__":
    main()
