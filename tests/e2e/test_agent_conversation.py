"""The agent in a real room with tiny Kyutai models and the stub LLM."""

from __future__ import annotations

import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.livekit_server import LiveKitServer
from tests.support.participant import TestParticipant
from tests.support.stub_llm import Reply, StubLLM
from tests.support.worker import WorkerHandle, start_worker

pytestmark = pytest.mark.e2e

MakeParticipant = Callable[..., Awaitable[TestParticipant]]


@pytest.fixture(scope="module")
def worker(
    livekit_server: LiveKitServer, artifacts_dir: Path, agent_env: dict[str, str]
) -> Iterator[WorkerHandle]:
    env = {**agent_env, "KYUTAI_SILENCE_TIMEOUT_S": "3", "KYUTAI_MAX_SILENT_TURNS": "2"}
    handle = start_worker(livekit_server, artifacts_dir / "logs", name="worker-conversation",
                          env=env)
    try:
        yield handle
    finally:
        handle.stop()


def last_user_text(request: dict[str, Any]) -> str:
    users = [m for m in request["messages"] if m["role"] == "user"]
    return str(users[-1]["content"]) if users else ""


def system_text(request: dict[str, Any]) -> str:
    return "\n".join(str(m["content"]) for m in request["messages"] if m["role"] == "system")


def agent_said(user: TestParticipant) -> list[str]:
    agent_ids = {p.identity for p in user.agents()}
    return [t.text for t in user.transcripts if t.identity in agent_ids]


async def test_greets_first_as_the_character_from_the_metadata(
    worker: WorkerHandle, stub_llm: StubLLM, make_participant: MakeParticipant, room_name: str
) -> None:
    stub_llm.push(Reply(text="Hello, I am your physics tutor. Shall we start with forces?"))
    user = await make_participant(
        room_name, "learner", dispatch_agent="kyutai-agent",
        metadata='{"character": "tutor", "subject": "physics", "level": "advanced"}',
    )
    await user.wait_for_agent(timeout=10)
    await user.wait_for(lambda: any("physics tutor" in t for t in agent_said(user)),
                        timeout=30, what="the greeting's transcript")
    await user.wait_for(lambda: user.agent_audio_after(0.0) is not None, timeout=30,
                        what="audible agent audio")
    first = stub_llm.requests[0]
    assert last_user_text(first) in ("", "Hello.")  # nobody had spoken: the agent went first
    prompt = system_text(first).lower()
    assert "physics" in prompt and "advanced" in prompt
    assert "voice=vctk/p226_023.wav" in worker.process.log_tail(400_000)
    await user.leave()


async def test_silence_nudges_then_goodbye(
    worker: WorkerHandle, stub_llm: StubLLM, make_participant: MakeParticipant, room_name: str
) -> None:
    def responder(request: dict[str, Any]) -> Reply:
        system = system_text(request)
        if last_user_text(request) == "...":
            if "goodbye" in system.lower() and len(stub_llm.requests) >= 3:
                return Reply(text="It seems you are busy. Goodbye!")
            return Reply(text="Are you still there?")
        return Reply(text="Hi there, nice to meet you.")

    stub_llm.responder = responder
    user = await make_participant(room_name, "quiet", dispatch_agent="kyutai-agent")
    await user.wait_for_agent(timeout=10)
    await user.wait_for(lambda: any("nice to meet you" in t for t in agent_said(user)),
                        timeout=30, what="the greeting")
    await user.wait_for(lambda: any("still there" in t for t in agent_said(user)),
                        timeout=30, what="a nudge after silence")
    await user.wait_for(lambda: not user.agents(), timeout=40,
                        what="the agent to say goodbye and leave")
    dots = [r for r in stub_llm.requests if last_user_text(r) == "..."]
    assert len(dots) == 2  # one nudge, then the goodbye turn
    assert any("Goodbye" in t for t in agent_said(user)) or "goodbye" in worker.process.log_tail(
        400_000
    ).lower()
    await user.leave()


async def test_prometheus_shows_latency_histograms(
    worker: WorkerHandle, agent_env: dict[str, str], stub_llm: StubLLM,
    make_participant: MakeParticipant, room_name: str,
) -> None:
    user = await make_participant(room_name, "metrics", dispatch_agent="kyutai-agent")
    await user.wait_for_agent(timeout=10)
    await user.wait_for(lambda: user.agent_audio_after(0.0) is not None, timeout=30,
                        what="agent audio")
    url = f"http://127.0.0.1:{agent_env['AGENT_PROMETHEUS_PORT']}/metrics"

    def histogram_count(stage: str) -> float:
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        for line in body.splitlines():
            if line.startswith(f'kyutai_agent_turn_latency_seconds_count{{stage="{stage}"}}'):
                return float(line.split()[-1])
        return 0.0

    await user.wait_for(lambda: histogram_count("tts_ttfb") >= 1, timeout=20,
                        what="the TTS histogram")
    assert histogram_count("llm_ttft") >= 1
    await user.leave()
