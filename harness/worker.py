"""Run the agent worker (`python -m agent`) as a subprocess against a local livekit-server."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .livekit_server import ROOT, LiveKitServer
from .ports import free_port
from .procs import ManagedProcess, http_ok, spawn, wait_until


def tiny_stack_env(inference_url: str, api_key: str, llm_url: str, **extra: str) -> dict[str, str]:
    """A worker's environment for the tiny inference server and a (stub) LLM, on free ports.

    Nothing about turns is set: the worker runs the shipped defaults (end of turn from the
    tiny STT's pause heads, which behave like Kyutai's), as the dev stack does. `extra` adds
    or overrides variables (`AGENT_MAX_JOBS="4"`, …)."""
    return {
        "KYUTAI_STT_URL": inference_url,
        "KYUTAI_TTS_URL": inference_url,
        "KYUTAI_MOSHI_URL": inference_url,  # duplex characters, when it serves Moshi
        "KYUTAI_API_KEY": api_key,
        "KYUTAI_LLM_URL": llm_url,
        "AGENT_STATUS_PORT": str(free_port()),
        "AGENT_PROMETHEUS_PORT": str(free_port()),
        **extra,
    }


def worker_env(
    server: LiveKitServer, http_port: int, agent_name: str, env: Mapping[str, str] | None
) -> dict[str, str]:
    """The worker's environment: `server`'s credentials, the health endpoint on `http_port`,
    then `env` (which wins)."""
    return {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "LIVEKIT_AGENT_NAME": agent_name,
        "AGENT_HTTP_HOST": "127.0.0.1",
        "AGENT_HTTP_PORT": str(http_port),
        "NO_TORCH_COMPILE": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }


@dataclass
class WorkerHandle:
    process: ManagedProcess
    http_port: int
    agent_name: str

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def healthy(self) -> bool:
        return http_ok(self.health_url)

    def stop(self, timeout: float = 20.0) -> int:
        return self.process.stop(timeout=timeout)


def start_worker(
    server: LiveKitServer,
    log_dir: Path,
    *,
    name: str = "agent-worker",
    agent_name: str = "kyutai-agent",
    mode: str = "start",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> WorkerHandle:
    """Start the worker and wait until it has registered with the server."""
    http_port = free_port()
    process = spawn(
        name,
        [sys.executable, "-m", "agent", mode, "--log-level", "debug"],
        log_dir,
        env=worker_env(server, http_port, agent_name, env),
        cwd=ROOT,
    )
    handle = WorkerHandle(process=process, http_port=http_port, agent_name=agent_name)
    wait_until(
        lambda: "registered worker" in process.log_tail(200_000),
        timeout=timeout,
        what=f"{name} to register",
        process=process,
        interval=0.2,
    )
    return handle
