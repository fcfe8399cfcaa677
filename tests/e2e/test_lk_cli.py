"""LiveKit's own CLI runs the worker: `lk agent dev --no-reload` and `lk agent start`, from the
repository root, find src/agent.py, register with a real livekit-server, and a dispatched room
gets the agent. Skipped when the pinned lk is not built (`bash scripts/ensure-lk.sh`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from livekit import api

from harness.livekit_server import ROOT, LiveKitServer
from harness.lk import lk_binary, start_lk_worker
from harness.participant import TestParticipant
from harness.procs import wait_until

pytestmark = pytest.mark.e2e

MakeParticipant = Callable[..., Awaitable[TestParticipant]]


@pytest.fixture(scope="session")
def lk() -> str:
    """The pinned lk, asked for before the servers start: a skip when it is not built."""
    return lk_binary()


@pytest.mark.parametrize("command", [("dev", "--no-reload"), ("start",)], ids=["dev", "start"])
async def test_lk_agent_runs_the_worker(
    command: tuple[str, ...],
    lk: str,
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    agent_env: dict[str, str],
    make_participant: MakeParticipant,
    room_name: str,
) -> None:
    worker = start_lk_worker(
        livekit_server,
        artifacts_dir / "logs",
        command=command,
        name=f"lk-agent-{command[0]}",
        env=agent_env,
    )
    try:
        log = worker.process.log_tail(200_000)
        assert f"Detected Python agent (src/agent.py in {ROOT})" in log, log

        user = await make_participant(room_name, "carol")
        async with api.LiveKitAPI(
            livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:
            await lkapi.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name="kyutai-agent", room=room_name)
            )
        agent = await user.wait_for_agent(timeout=15)
        assert agent.identity.startswith("agent-")
        await user.wait_for(
            lambda: any(t.source == 2 for t in agent.track_publications.values()),
            timeout=15,
            what="the agent's microphone track",
        )
        await user.wait_for(
            lambda: user.agent_state() in ("listening", "thinking", "speaking"),
            timeout=10,
            what="lk.agent.state",
        )

        await user.leave()
        wait_until(
            lambda: "ending the job" in worker.process.log_tail(400_000),
            timeout=20,
            what="the job to end after the user left",
            process=worker.process,
        )
    finally:
        code = worker.stop()
    assert code == 0, worker.process.log_tail()
