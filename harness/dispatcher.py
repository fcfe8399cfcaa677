"""Run the dispatcher (`python -m dispatcher`) against a local livekit-server."""

from __future__ import annotations

import sys
from pathlib import Path

from .livekit_server import ROOT, LiveKitServer
from .procs import ManagedProcess, http_ok, spawn, wait_until


def start_dispatcher(
    livekit: LiveKitServer,
    log_dir: Path,
    name: str,
    port: int,
    *,
    agent_name: str = "kyutai-agent",
    poll_s: float = 2.0,
    **env: str,
) -> ManagedProcess:
    """Start it on 127.0.0.1:`port` and wait until it answers; `env` adds DISPATCHER_* etc."""
    process = spawn(
        name,
        [sys.executable, "-m", "dispatcher", "--host", "127.0.0.1", "--port", str(port)],
        log_dir,
        env={
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": livekit.api_key,
            "LIVEKIT_API_SECRET": livekit.api_secret,
            "LIVEKIT_AGENT_NAME": agent_name,
            "DISPATCHER_POLL_S": str(poll_s),
            "PYTHONUNBUFFERED": "1",
            **env,
        },
        cwd=ROOT,
    )
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/"), timeout=30, what=name, process=process)
    return process
