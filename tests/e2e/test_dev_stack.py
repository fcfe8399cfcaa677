"""README command (1), `bash scripts/dev-stack.sh`, keeps the whole stack on loopback.

The dev stack uses LiveKit's development keys: nothing of it may be reachable from another
machine. Started as a user would, every listening socket of every process it runs is listed.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.livekit_server import ROOT
from harness.procs import wait_until

pytestmark = pytest.mark.e2e

READY_LINE = "The stack is running."


@pytest.fixture
def dev_stack(artifacts_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = artifacts_dir / "logs" / "dev-stack.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/dev-stack.sh"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "KYUTAI_"))},
        )
        try:
            yield proc, log
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the script stops every service
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def listening(root: psutil.Process) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket and bound UDP socket."""
    found = []
    for p in [root, *root.children(recursive=True)]:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status in (psutil.CONN_LISTEN, psutil.CONN_NONE) and c.laddr:
                    found.append((p.name(), c.laddr.ip, c.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_the_dev_stack_listens_on_loopback_only(
    dev_stack: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, log = dev_stack
    wait_until(
        lambda: READY_LINE in log.read_text(errors="replace") or proc.poll() is not None,
        timeout=300,
        what="the dev stack to start",
    )
    assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
    sockets = listening(psutil.Process(proc.pid))
    names = {name for name, _ip, _port in sockets}
    # Every service of the stack is there: LiveKit, inference, LLM stub, tokens, dispatcher, agent.
    assert "livekit-server" in names and len(sockets) >= 7, sockets
    exposed = [s for s in sockets if not ipaddress.ip_address(s[1]).is_loopback]
    assert not exposed, f"listening beyond loopback: {exposed}"
