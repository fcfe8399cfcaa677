"""End of turn in a real room, with the shipped defaults: Kyutai's pause heads end the turn.

The tiny STT's pause heads behave like the real ones (low while the user speaks and through a
hesitation, above 0.6 after ~0.5 s of silence), so these tests run the path users get. The
same scenarios run against a tiny STT without pause heads (like kyutai/stt-2.6b-en), where the
worker learns from the server's /api/build_info to end turns on Silero VAD silence instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.inference_server import InferenceServer, start_inference_server
from harness.livekit_server import ROOT, LiveKitServer
from harness.participant import SAMPLE_RATE, TestParticipant
from harness.speech import speech_samples
from harness.stub_llm import Reply, StubLLM
from harness.worker import WorkerHandle, start_worker, tiny_stack_env

pytestmark = pytest.mark.e2e

MakeParticipant = Callable[..., Awaitable[TestParticipant]]


@pytest.fixture(scope="module")
def noheads_inference(artifacts_dir: Path) -> Iterator[InferenceServer]:
    with start_inference_server(
        ROOT / ".cache" / "kyutai-tiny",
        models="tiny-noheads",
        batch_size=4,
        tts_batch_size=8,
        log_dir=artifacts_dir / "logs",
    ) as server:
        yield server


@pytest.fixture(scope="module", params=["pause-heads", "no-heads", "vad-setting"])
def turn_worker(
    request: pytest.FixtureRequest,
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    inference_server: InferenceServer,
    stub_llm_server: StubLLM,
) -> Iterator[tuple[str, WorkerHandle]]:
    """A worker with the shipped defaults (no turn-detection variable set), against an STT with
    pause heads and one without; and, as the one exception, a worker set to VAD turns
    (KYUTAI_TURN_DETECTION=vad), the option that stays for those who want it."""
    server = (
        request.getfixturevalue("noheads_inference")
        if request.param == "no-heads"
        else inference_server
    )
    env = tiny_stack_env(server.url, server.api_key, stub_llm_server.base_url)
    assert not {"KYUTAI_TURN_DETECTION", "KYUTAI_VAD_MIN_SILENCE_S"} & env.keys()
    if request.param == "vad-setting":
        env["KYUTAI_TURN_DETECTION"] = "vad"
    agent_name = f"turns-{request.param}"
    handle = start_worker(
        livekit_server,
        artifacts_dir / "logs",
        name=f"worker-turns-{request.param}",
        agent_name=agent_name,
        env=env,
    )
    try:
        yield agent_name, handle
    finally:
        handle.stop()


MIN_WORDS_PER_HALF = 2  # the tiny STT writes a (babble) word every few frames of speech


def words(text: str) -> list[str]:
    return text.split()


def agent_said(user: TestParticipant) -> list[str]:
    agents = {a.identity for a in user.agents()}
    return [t.text for t in user.transcripts if t.identity in agents]


def user_texts(request: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in request["messages"] if m["role"] == "user"]


def speech(*parts: str | float) -> np.ndarray:
    """Words and silences (seconds) in a row. espeak-ng pads its output with ~0.35 s of
    silence; that is cut, so a silence here is exactly the pause the user makes."""
    out = []
    for part in parts:
        if isinstance(part, str):
            samples = speech_samples(part, lead_silence_s=0.0, trail_silence_s=0.0)
            loud = np.flatnonzero(np.abs(samples) > 0.003)
            out.append(samples[loud[0] : loud[-1] + 1])
        else:
            out.append(np.zeros(round(part * SAMPLE_RATE), dtype=np.float32))
    return np.concatenate(out)


async def greeted(
    make_participant: MakeParticipant, room_name: str, agent_name: str
) -> TestParticipant:
    user = await make_participant(room_name, "speaker", dispatch_agent=agent_name)
    await user.wait_for_greeting()
    # the greeting's last frames may still be on their way to the listener
    await user.wait_for(
        lambda: user.agent_quiet_since(time.monotonic() - 0.5), timeout=10, what="quiet"
    )
    return user


async def test_a_spoken_question_is_answered_promptly(
    turn_worker: tuple[str, WorkerHandle],
    stub_llm: StubLLM,
    make_participant: MakeParticipant,
    room_name: str,
) -> None:
    agent_name, worker = turn_worker
    questions = (
        "What is the weather like today?",
        "And what about tomorrow morning?",
        "Should I take an umbrella then?",
    )
    stub_llm.push(Reply(text="Hello there."), *(Reply(text="Sure.") for _ in questions))
    user = await greeted(make_participant, room_name, agent_name)
    latencies = []
    for question in questions:
        _onset, end = await user.say_samples(speech(question, 0.3))
        await user.wait_for(
            lambda end=end: user.agent_audio_after(end) is not None,
            timeout=10,
            what="the spoken answer",
        )
        latencies.append((user.agent_audio_after(end) or 0) - end)
        await user.wait_for(
            lambda: user.agent_state() == "listening", timeout=20, what="the answer to end"
        )
        await user.wait_for(
            lambda: user.agent_quiet_since(time.monotonic() - 0.5), timeout=10, what="quiet"
        )
    print(f"[{agent_name}] end of speech -> first agent audio: {latencies}")
    # Promptly means the turn was ended by the mode the worker chose, not by LiveKit's 3 s
    # fallback (endpointing max_delay): that one alone would put the answer past 3 s. What
    # comes after the end of the turn is model time on CPU (the tiny TTS's first audio ranges
    # 0.25-0.9 s on a loaded 2-core machine, see the worker's `turn waterfall` lines), so it is
    # not what this bounds. The median of three: one hiccup is not a verdict.
    latency = sorted(latencies)[1]
    assert latency < 3.0, f"answers started {latencies} s after the user stopped"
    assert len(stub_llm.requests) == 1 + len(questions)
    assert all(user_texts(r)[-1].strip() for r in stub_llm.requests[1:])
    # The worker said which turn mode it chose, and why.
    said = {
        "turns-pause-heads": "has pause heads: True (delay 0.50 s): end of turn from the pause",
        "turns-no-heads": "without pause heads (delay 0.50 s): end of turn from Silero VAD",
        "turns-vad-setting": "has pause heads: True (delay 0.50 s): end of turn from Silero VAD",
    }[agent_name]
    assert said in worker.process.log_tail(400_000)
    await user.leave()


async def test_a_hesitation_does_not_end_the_turn(
    turn_worker: tuple[str, WorkerHandle],
    stub_llm: StubLLM,
    make_participant: MakeParticipant,
    room_name: str,
) -> None:
    agent_name, _worker = turn_worker
    stub_llm.push(Reply(text="Hello there."), Reply(text="Let me think about that."))
    user = await greeted(make_participant, room_name, agent_name)
    halves = ("I would like to know", "what the weather is like today")
    onset, end = await user.say_samples(speech(halves[0], 0.35, halves[1], 0.3))
    await user.wait_for(
        lambda: user.agent_audio_after(end) is not None, timeout=10, what="the reply"
    )
    await user.wait_for(
        lambda: user.agent_state() == "listening", timeout=20, what="the reply to end"
    )
    # One reply, asked for once the user had stopped, with the words of both halves.
    assert len(stub_llm.requests) == 2, [user_texts(r) for r in stub_llm.requests]
    assert stub_llm.received_at[1] > end, "the turn ended in the hesitation"
    assert (user.agent_audio_after(onset) or 0) > end, "the agent spoke in the hesitation"
    assert len(words(user_texts(stub_llm.requests[1])[-1])) >= MIN_WORDS_PER_HALF * 2
    await user.leave()


async def test_speech_after_an_early_end_of_turn_gets_one_reply(
    turn_worker: tuple[str, WorkerHandle],
    stub_llm: StubLLM,
    make_participant: MakeParticipant,
    room_name: str,
) -> None:
    """A pause long enough to end the turn, then the user goes on while the LLM is still
    thinking (a first token after 2 s, as a loaded LLM server gives): the reply to the first
    half is dropped unheard, and the whole utterance gets one reply when the user stops."""
    agent_name, _worker = turn_worker
    stub_llm.push(
        Reply(text="Hello there."),
        Reply(text="A reply to half a question.", first_token_delay_s=2.0),
        Reply(text="The whole answer."),
    )
    user = await greeted(make_participant, room_name, agent_name)
    onset, end = await user.say_samples(
        speech("Tell me about", 0.8, "the moons of Jupiter please", 0.3)
    )
    await user.wait_for(
        lambda: any("The whole answer." in t for t in agent_said(user)),
        timeout=20,
        what="the reply to the whole utterance",
    )
    said = agent_said(user)
    assert not any("half a question" in t for t in said), said
    assert (user.agent_audio_after(onset) or 0) > end, "a reply was heard before the user stopped"
    assert len(stub_llm.requests) == 3, [user_texts(r) for r in stub_llm.requests]
    first, whole = (" ".join(user_texts(r)[1:]) for r in stub_llm.requests[1:])
    assert first and whole.startswith(first) and len(words(whole)) > len(words(first))
    await user.leave()
