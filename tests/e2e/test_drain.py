"""SIGTERM drains a worker: the conversation in progress goes on, then the worker exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from harness.join_token import make_token
from harness.livekit_server import LiveKitServer
from harness.participant import TestParticipant
from harness.ports import free_port
from harness.procs import wait_until
from harness.speech import speech_wav
from harness.worker import start_worker

pytestmark = pytest.mark.e2e


async def test_sigterm_lets_the_running_conversation_finish(
    livekit_server: LiveKitServer, artifacts_dir: Path, agent_env: dict[str, str]
) -> None:
    env = {
        **agent_env,
        "AGENT_STATUS_PORT": str(free_port()),
        "AGENT_PROMETHEUS_PORT": str(free_port()),
        "AGENT_DRAIN_TIMEOUT_S": "120",
        "LIVEKIT_AGENT_NAME": "kyutai-agent-drain",
    }
    worker = start_worker(
        livekit_server,
        artifacts_dir / "logs",
        name="worker-drain",
        agent_name="kyutai-agent-drain",
        env=env,
    )
    user = TestParticipant(identity="drained")
    try:
        room = f"drain-{uuid.uuid4().hex[:8]}"
        await user.join(
            livekit_server.url,
            make_token(
                livekit_server.api_key,
                livekit_server.api_secret,
                room=room,
                identity="drained",
                dispatch_agent="kyutai-agent-drain",
            ),
        )
        await user.wait_for_agent(timeout=30)
        await user.wait_for(
            lambda: user.agent_state() == "listening" and user.agent_audio_after(0.0) is not None,
            timeout=40,
            what="the greeting",
        )

        # What docker/Kubernetes do: SIGTERM to the worker's main process only.
        os.kill(worker.process.proc.pid, signal.SIGTERM)
        wait_until(
            lambda: "draining worker" in worker.process.log_tail(400_000),
            timeout=10,
            what="the worker to start draining",
            process=worker.process,
        )

        # A room dispatched now does not go to the draining worker.
        other = TestParticipant(identity="latecomer")
        await other.join(
            livekit_server.url,
            make_token(
                livekit_server.api_key,
                livekit_server.api_secret,
                room=f"{room}-late",
                identity="latecomer",
                dispatch_agent="kyutai-agent-drain",
            ),
        )

        # The conversation in progress completes a turn.
        _onset, end = await user.say(speech_wav("Are you still with me?"))
        await user.wait_for(
            lambda: user.agent_audio_after(end) is not None,
            timeout=15,
            what="the answer during the drain",
        )
        assert worker.process.alive(), "the worker quit before its conversation ended"
        assert not other.agents(), "a draining worker took a new room"
        await other.leave()

        # The user hangs up: the job ends, and so does the worker, cleanly.
        await user.leave()
        try:
            code = worker.process.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit after draining:\n{worker.process.log_tail()}")
        assert code == 0, worker.process.log_tail()
    finally:
        if user.room.isconnected():
            await user.leave()
        worker.stop()
