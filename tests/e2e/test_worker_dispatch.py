"""The worker skeleton in a real room: token dispatch, API dispatch, job end, health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from livekit import api

from harness.livekit_server import LiveKitServer
from harness.participant import TestParticipant
from harness.procs import wait_until
from harness.worker import WorkerHandle, start_worker

pytestmark = pytest.mark.e2e

MakeParticipant = Callable[..., Awaitable[TestParticipant]]


@pytest.fixture(scope="module")
def worker(
    livekit_server: LiveKitServer, artifacts_dir: Path, agent_env: dict[str, str]
) -> Iterator[WorkerHandle]:
    handle = start_worker(
        livekit_server, artifacts_dir / "logs", name="worker-dispatch", env=agent_env
    )
    try:
        yield handle
    finally:
        assert handle.stop() == 0, handle.process.log_tail()


async def test_token_dispatch_brings_the_agent(
    worker: WorkerHandle, make_participant: MakeParticipant, room_name: str
) -> None:
    user = await make_participant(
        room_name, "alice", dispatch_agent="kyutai-agent", metadata='{"character": "watercooler"}'
    )
    agent = await user.wait_for_agent(timeout=10)
    assert agent.identity.startswith("agent-")

    await user.wait_for(
        lambda: any(t.source == 2 for t in agent.track_publications.values()),
        timeout=10,
        what="the agent's microphone track",
    )
    await user.wait_for(
        lambda: user.agent_state() in ("listening", "thinking", "speaking"),
        timeout=10,
        what="lk.agent.state",
    )

    job_log_before = worker.process.log_tail(400_000).count("ending the job")
    await user.leave()
    wait_until(
        lambda: worker.process.log_tail(400_000).count("ending the job") > job_log_before,
        timeout=20,
        what="the job to end after the user left",
        process=worker.process,
    )
    assert worker.healthy(), "worker health endpoint must answer 200 after the job ended"


async def test_api_dispatch_into_existing_room(
    worker: WorkerHandle,
    livekit_server: LiveKitServer,
    make_participant: MakeParticipant,
    room_name: str,
) -> None:
    user = await make_participant(room_name, "bob")  # no dispatch in this token
    assert user.agents() == []
    async with api.LiveKitAPI(
        livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
    ) as lkapi:
        dispatch = await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                agent_name="kyutai-agent", room=room_name, metadata='{"character": "tutor"}'
            )
        )
        assert dispatch.agent_name == "kyutai-agent"
        agent = await user.wait_for_agent(timeout=10)
        await user.wait_for(
            lambda: user.agent_state() is not None, timeout=10, what="lk.agent.state"
        )
        dispatches = await lkapi.agent_dispatch.list_dispatch(room_name=room_name)
        # The server also lists the room's implicit (unnamed) dispatch.
        assert "kyutai-agent" in [d.agent_name for d in dispatches]
    assert agent.identity.startswith("agent-")


def test_health_view_reports_dependencies(worker: WorkerHandle, agent_env: dict[str, str]) -> None:
    import json
    import urllib.request

    url = f"http://127.0.0.1:{agent_env['AGENT_STATUS_PORT']}/health"
    wait_until(lambda: _answers(url), timeout=10, what="the health view")
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body == {"stt_up": True, "tts_up": True, "llm_up": True, "ok": True}
    # Readiness also says LiveKit has registered the worker (the fixture waited for that).
    with urllib.request.urlopen(url.replace("/health", "/ready"), timeout=5) as resp:
        ready = json.loads(resp.read())
    assert ready == {"registered": True, "stt_up": True, "tts_up": True, "llm_up": True, "ok": True}


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except (urllib.error.URLError, OSError):
        return False
