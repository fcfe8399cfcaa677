"""The worker run by LiveKit's own CLI: `lk agent dev|start`, from the repository root.

lk finds src/agent.py and runs `uv run --no-sync python -m livekit.agents start src/agent.py`
(with `--dev` for `lk agent dev`) in a process group of its own; the pinned lk comes from
scripts/ensure-lk.sh.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import PrerequisiteMissing
from .livekit_server import ROOT, LiveKitServer
from .ports import free_port
from .procs import spawn, wait_until
from .worker import WorkerHandle, worker_env


@functools.cache
def lk_binary() -> str:
    """Path of the pinned lk (LK_BIN, `lk` on PATH or .cache/lk/); PrerequisiteMissing when it
    is not built: building takes minutes, so this never builds it (scripts/ensure-lk.sh does)."""
    script = ROOT / "scripts" / "ensure-lk.sh"
    result = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LK_NO_BUILD": "1"},
    )
    if result.returncode != 0:
        raise PrerequisiteMissing(f"LiveKit's CLI is not available: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


@dataclass
class LkWorkerHandle(WorkerHandle):
    agent_group: int  # the process group lk runs the worker in

    def stop(self, timeout: float = 20.0) -> int:
        """Stop lk as Ctrl-C would (it passes SIGINT on to the worker); should lk have to be
        killed, its worker's process group is killed too."""
        code = self.process.stop(timeout=timeout, sig=signal.SIGINT)
        try:
            os.killpg(self.agent_group, signal.SIGKILL)
        except ProcessLookupError:
            pass  # gone with lk, as it should be
        return code


def start_lk_worker(
    server: LiveKitServer,
    log_dir: Path,
    *,
    command: Sequence[str] = ("dev", "--no-reload"),
    name: str = "lk-agent-worker",
    agent_name: str = "kyutai-agent",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> LkWorkerHandle:
    """`lk agent <command>` from the repository root; waits until the worker has registered."""
    http_port = free_port()
    process = spawn(
        name,
        [lk_binary(), "agent", *command],
        log_dir,
        env=worker_env(server, http_port, agent_name, env),
        cwd=ROOT,
    )
    wait_until(
        lambda: "registered worker" in process.log_tail(200_000),
        timeout=timeout,
        what=f"{name} to register",
        process=process,
        interval=0.2,
    )
    # lk's one child (`uv run …`) leads a process group of its own; any of lk's threads forked it.
    tasks = Path(f"/proc/{process.proc.pid}/task").glob("*/children")
    children = [int(pid) for task in tasks for pid in task.read_text().split()]
    return LkWorkerHandle(
        process=process, http_port=http_port, agent_name=agent_name, agent_group=children[0]
    )
