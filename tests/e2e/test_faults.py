"""Faults during a conversation; each test ends with a successful spoken turn.

- the LLM answers 500, or hangs past KYUTAI_LLM_TIMEOUT_S: a spoken apology, the session goes on;
- the inference server restarts mid-conversation: the next turn is answered;
- the worker running the room is SIGKILLed: livekit-server does not re-dispatch (v1.13.5
  forgets the job), so `python -m dispatcher` (fed by livekit-server's webhooks) dispatches
  a new agent, which another worker takes.

One livekit-server (with a webhook to the dispatcher), one tiny inference server on a
fixed port (so it can be restarted), two workers, shared by the module.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.dispatcher import start_dispatcher
from harness.join_token import make_token
from harness.livekit_server import ROOT, LiveKitServer, start_livekit_server
from harness.participant import TestParticipant
from harness.ports import free_port
from harness.procs import ManagedProcess, http_ok, spawn, wait_until
from harness.speech import speech_wav
from harness.stub_llm import Reply, StubLLM
from harness.worker import WorkerHandle, start_worker

pytestmark = pytest.mark.e2e

APOLOGY = "lost my train of thought"
ANSWER = "I heard you"


@dataclass
class Inference:
    """The tiny inference server on a fixed port, restartable."""

    port: int
    log_dir: Path
    process: ManagedProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        self.process = spawn(
            f"inference-faults-{self.starts}",
            [
                sys.executable,
                "-m",
                "inference",
                "serve",
                "--models",
                "tiny",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--stt-batch-size",
                "4",
                "--tts-batch-size",
                "4",
                "--cache-dir",
                str(ROOT / ".cache" / "kyutai-tiny"),
            ],
            self.log_dir,
            env={
                "NO_CUDA_GRAPH": "1",
                "HF_HUB_OFFLINE": "1",
                "OMP_NUM_THREADS": "1",
                "KYUTAI_API_KEYS": "public_token",
            },
            cwd=ROOT,
        )
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{self.port}/api/build_info"),
            timeout=120,
            what="the inference server",
            process=self.process,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Stack:
    livekit: LiveKitServer
    inference: Inference
    failover: ManagedProcess
    workers: list[WorkerHandle]
    stub: StubLLM


@pytest.fixture(scope="module")
def stack(artifacts_dir: Path, stub_llm_server: StubLLM) -> Iterator[Stack]:
    logs = artifacts_dir / "logs"
    failover_port = free_port()
    livekit = start_livekit_server(
        logs,
        name="livekit-faults",
        api_key="faultkey",
        webhook_url=f"http://127.0.0.1:{failover_port}/webhook",
    )
    inference = Inference(free_port(), logs)
    workers: list[WorkerHandle] = []
    failover: ManagedProcess | None = None
    try:
        inference.start()
        failover = start_dispatcher(livekit, logs, "failover", failover_port)
        for name in ("worker-faults-1", "worker-faults-2"):
            env = {
                "KYUTAI_STT_URL": inference.url,
                "KYUTAI_TTS_URL": inference.url,
                "KYUTAI_API_KEY": "public_token",
                "KYUTAI_LLM_URL": stub_llm_server.base_url,
                "KYUTAI_TURN_DETECTION": "vad",
                "KYUTAI_LLM_TIMEOUT_S": "2",
                "KYUTAI_SILENCE_TIMEOUT_S": "60",
                "AGENT_STATUS_PORT": str(free_port()),
                "AGENT_PROMETHEUS_PORT": str(free_port()),
            }
            workers.append(start_worker(livekit, logs, name=name, env=env))
        yield Stack(livekit, inference, failover, workers, stub_llm_server)
    finally:
        for worker in workers:
            worker.stop()
        if failover is not None:
            failover.stop()
        inference.stop()
        livekit.stop()


MakeUser = Callable[..., Awaitable[TestParticipant]]


@pytest.fixture
async def join(stack: Stack, room_name: str) -> Any:
    users: list[TestParticipant] = []
    stack.stub.reset()

    async def factory(identity: str = "user") -> TestParticipant:
        token = make_token(
            stack.livekit.api_key,
            stack.livekit.api_secret,
            room=room_name,
            identity=identity,
            dispatch_agent="kyutai-agent",
        )
        user = TestParticipant(identity=identity)
        await user.join(stack.livekit.url, token)
        users.append(user)
        return user

    yield factory
    for user in users:
        if user.room.isconnected():
            await user.leave()


def agent_said(user: TestParticipant) -> list[str]:
    agents = {p.identity for p in user.agents()}
    return [t.text for t in user.transcripts if t.identity in agents]


async def wait_listening(user: TestParticipant, timeout: float = 40) -> None:
    """The agent is in the room, has spoken (greeting or answer) and listens again."""
    await user.wait_for_agent(timeout=timeout)
    await user.wait_for(
        lambda: user.agent_state() == "listening" and user.agent_audio_after(0.0) is not None,
        timeout=timeout,
        what="the agent to speak and listen",
    )


async def spoken_turn(
    user: TestParticipant, text: str, expect: str | None = None, timeout: float = 20
) -> float:
    """Say `text`; wait for audible agent audio (and `expect` in its transcript)."""
    await user.wait_for(
        lambda: user.agent_state() == "listening", timeout=30, what="the agent to listen"
    )
    said_before = len(agent_said(user))
    _onset, end = await user.say(speech_wav(text))
    await user.wait_for(
        lambda: user.agent_audio_after(end) is not None,
        timeout=timeout,
        what=f"an answer to {text!r}",
    )
    if expect is not None:
        await user.wait_for(
            lambda: any(expect in t for t in agent_said(user)[said_before:]),
            timeout=timeout,
            what=f"{expect!r} in the agent's transcript",
        )
    return (user.agent_audio_after(end) or 0.0) - end


class FailingLLM:
    """Responder: the first request (the greeting) works, then `failure` until `fixed`."""

    def __init__(self, failure: Reply) -> None:
        self.failure = failure
        self.fixed = threading.Event()
        self.calls = 0

    def __call__(self, request: dict[str, Any]) -> Reply:
        self.calls += 1
        if self.calls == 1:
            return Reply(text="Hello, I am here.")
        if self.fixed.is_set():
            return Reply(text=f"{ANSWER}, all is well again.")
        return self.failure


@pytest.mark.parametrize(
    "failure", [Reply(status=500), Reply(hang=True)], ids=["llm-500", "llm-hangs"]
)
async def test_llm_failure_apologises_and_the_session_continues(
    stack: Stack, join: MakeUser, failure: Reply
) -> None:
    llm = FailingLLM(failure)
    stack.stub.responder = llm
    user = await join("llm-victim")
    await wait_listening(user)
    await spoken_turn(user, "What is the capital of France?", expect=APOLOGY, timeout=25)
    llm.fixed.set()
    await spoken_turn(user, "Let me ask again, what is the capital?", expect=ANSWER)


async def test_inference_restart_mid_conversation(
    stack: Stack, join: MakeUser, room_name: str
) -> None:
    user = await join("restart-victim")
    await wait_listening(user)
    await spoken_turn(user, "Hello, how are you today?")
    host = worker_with_room(stack, room_name)
    stack.inference.stop()
    # An outage longer than LiveKit's default STT budget (3 retries, ~4 s, after which the
    # session closes): KYUTAI_MODEL_OUTAGE_S keeps the conversation retrying.
    await user.wait_for(
        lambda: '"attempt": 5' in host.process.log_tail(2_000_000),
        timeout=60,
        what="the STT to retry past LiveKit's default budget",
    )
    stack.inference.start()
    await user.wait_for(lambda: bool(user.agents()), timeout=5, what="the agent to stay")
    # The session reconnects its STT and TTS streams; the next turn is answered.
    latency = await spoken_turn(user, "Are you still there after the restart?", timeout=30)
    print(f"first turn after the inference restart answered in {latency:.2f}s")
    assert user.agents(), "the agent left the room"


def worker_with_room(stack: Stack, room: str) -> WorkerHandle:
    hosts = [w for w in stack.workers if f"room {room}:" in w.process.log_tail(2_000_000)]
    assert len(hosts) == 1, f"room {room} found in {len(hosts)} worker logs"
    return hosts[0]


async def test_killed_worker_rooms_get_a_new_agent(
    stack: Stack, join: MakeUser, room_name: str
) -> None:
    user = await join("kill-victim")
    await wait_listening(user)
    first_agent = user.agents()[0].identity
    victim = worker_with_room(stack, room_name)
    survivor = next(w for w in stack.workers if w is not victim)
    os.killpg(victim.process.proc.pid, signal.SIGKILL)
    victim.process.proc.wait(timeout=10)
    await user.wait_for(
        lambda: any(p.identity != first_agent for p in user.agents()),
        timeout=60,
        what="a new agent after the worker was killed",
    )
    wait_until(
        lambda: f"room {room_name}:" in survivor.process.log_tail(2_000_000),
        timeout=10,
        what="the surviving worker to take the room",
    )
    user.audio.clear()
    await wait_listening(user)
    await spoken_turn(user, "Hello again, are you the new agent?")
    assert "dispatched a new one" in stack.failover.log_tail(100_000)
