"""kyutai.STT and kyutai.TTS inside a real room: an AgentSession answers a spoken question and
the listening participant hears the agent and receives its transcript."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from harness.inference_server import InferenceServer
from harness.livekit_server import ROOT, LiveKitServer
from harness.participant import TestParticipant
from harness.ports import free_port
from harness.procs import ManagedProcess, spawn, wait_until
from harness.speech import speech_wav
from harness.stub_llm import Reply, StubLLM

pytestmark = pytest.mark.e2e

AGENT_NAME = "kyutai-plugin-test"
ANSWER = "It is three o'clock in the afternoon."


@pytest.fixture(scope="module")
def plugin_worker(
    livekit_server: LiveKitServer,
    inference_server: InferenceServer,
    stub_llm_server: StubLLM,
    artifacts_dir: Path,
) -> Iterator[ManagedProcess]:
    env = {
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "KYUTAI_STT_URL": inference_server.url,
        "KYUTAI_TTS_URL": inference_server.url,
        "KYUTAI_API_KEY": inference_server.api_key,
        "PLUGIN_TEST_LLM_URL": stub_llm_server.base_url,
        "PLUGIN_TEST_AGENT_NAME": AGENT_NAME,
        "PLUGIN_TEST_HTTP_PORT": str(free_port()),
        "NO_TORCH_COMPILE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    process = spawn(
        "plugin-worker",
        [sys.executable, "-m", "tests.e2e.plugin_worker", "start", "--log-level", "debug"],
        artifacts_dir / "logs",
        env=env,
        cwd=ROOT,
    )
    try:
        wait_until(
            lambda: "registered worker" in process.log_tail(200_000),
            timeout=60,
            what="the plugin worker to register",
            process=process,
            interval=0.2,
        )
        yield process
    finally:
        process.stop(timeout=20)


async def test_agent_answers_a_spoken_question(
    plugin_worker: ManagedProcess,
    stub_llm: StubLLM,
    room_name: str,
    make_participant: Callable[..., Awaitable[TestParticipant]],
) -> None:
    stub_llm.push(Reply(text=ANSWER))
    user = await make_participant(room_name, "user", dispatch_agent=AGENT_NAME)
    agent = await user.wait_for_agent(timeout=30)
    await user.publish_microphone()
    # the agent's session is listening once its state says so
    await user.wait_for(
        lambda: user.agent_state() == "listening", timeout=30, what="the agent to listen"
    )

    _onset, end = await user.say(speech_wav("Hello.", trail_silence_s=0.3))

    # the turn ended on the STT (pause heads), the stub LLM was asked, the TTS spoke
    await user.wait_for(
        lambda: user.agent_audio_after(end) is not None, timeout=30, what="agent audio"
    )
    first_audio = user.agent_audio_after(end)
    assert first_audio is not None
    assert stub_llm.requests, "the LLM was never called"

    def agent_said_answer() -> bool:
        texts = " ".join(t.text for t in user.transcripts if t.identity == agent.identity)
        return "three o'clock" in texts

    try:
        await user.wait_for(agent_said_answer, timeout=30, what="the agent's transcript")
    except TimeoutError:
        got = [(t.identity, t.text) for t in user.transcripts]
        asked = [r["messages"][-1] for r in stub_llm.requests]
        raise AssertionError(f"transcripts: {got}; LLM asked: {asked}") from None
    # the user's own speech was transcribed through kyutai.STT and published too
    user_texts = [t for t in user.transcripts if t.identity == user.identity]
    assert user_texts, "no user transcription"
    print(f"end of user speech -> first agent audio: {first_audio - end:.3f}s ({time.time():.0f})")
