"""Duplex mode in a real room: the `moshi` character, Kyutai's Moshi (the tiny keyed one, on our
inference server) listening and speaking at once, the Kyutai STT captioning the user, intents
raising tools.

The tiny Moshi says "howdy text" (9 frames, 0.72 s) when the session starts, yields within a
frame or two of the user's voice, and answers 2 frames after the user stops; the
`moshi-stubborn` checkpoint never yields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.duplex.intents import normalize
from harness.characters import write_duplex_characters
from harness.inference_server import InferenceServer, start_inference_server
from harness.livekit_server import ROOT, LiveKitServer
from harness.moshi_ears import longest_heard_pause
from harness.participant import MIN_RMS, SAMPLE_RATE, TestParticipant
from harness.speech import read_wav, speech_wav
from harness.stub_llm import StubLLM
from harness.worker import WorkerHandle, start_worker, tiny_stack_env
from inference.tiny import tiny_root
from inference.tiny_moshi import MOSHI_HANGOVER_FRAMES

pytestmark = pytest.mark.e2e

MakeParticipant = Callable[..., Awaitable[TestParticipant]]
TINY = ROOT / ".cache" / "kyutai-tiny"
SENTENCE = "howdy text"  # what the tiny Moshi says (inference/tiny_moshi.py)
MOSHI = '{"character": "moshi"}'


def assert_no_pause_moshi_hears(samples: np.ndarray) -> None:
    """The user talks over Moshi without a pause the tiny Moshi would take for the end of their
    turn (MOSHI_HANGOVER_FRAMES frames its Mimi reads as silence), whatever the frame alignment
    in the room, with 3 dB to spare for the Opus leg: the premise of "Moshi stays quiet while the
    user speaks"."""
    pause = longest_heard_pause(tiny_root(TINY) / "moshi", samples)
    assert pause < MOSHI_HANGOVER_FRAMES, f"the tiny Moshi can hear a {pause}-frame pause"


@pytest.fixture(scope="module")
def characters_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_duplex_characters(tmp_path_factory.mktemp("duplex") / "characters.yaml")


def _server(artifacts_dir: Path, repo: str) -> InferenceServer:
    return start_inference_server(
        TINY,
        batch_size=4,
        extra_args=["--engines", "stt,tts,moshi", "--moshi-batch-size", "4", "--moshi-repo", repo],
        log_dir=artifacts_dir / "logs",
    )


def _worker(
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    server: InferenceServer,
    stub_llm_server: StubLLM,
    characters_file: Path,
    name: str,
    moshi_url: str | None = None,
) -> WorkerHandle:
    env = tiny_stack_env(
        server.url,
        server.api_key,
        stub_llm_server.base_url,
        KYUTAI_MOSHI_URL=moshi_url or server.url,
        KYUTAI_CHARACTERS_FILE=str(characters_file),
        KYUTAI_RECORDINGS_DIR=str(artifacts_dir / "recordings-duplex"),
    )
    return start_worker(livekit_server, artifacts_dir / "logs", name=name, agent_name=name, env=env)


@pytest.fixture(scope="module")
def moshi_server(artifacts_dir: Path) -> Iterator[InferenceServer]:
    with _server(artifacts_dir, "tiny/moshi") as server:
        yield server


@pytest.fixture(scope="module")
def worker(
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    moshi_server: InferenceServer,
    stub_llm_server: StubLLM,
    characters_file: Path,
) -> Iterator[WorkerHandle]:
    handle = _worker(
        livekit_server, artifacts_dir, moshi_server, stub_llm_server, characters_file, "duplex"
    )
    yield handle
    handle.stop()


def agent_said(user: TestParticipant) -> list[str]:
    agents = {p.identity for p in user.agents()}
    mine = set(user.user_captions())
    return [t.text for t in user.transcripts if t.identity in agents and t.text not in mine]


def heard_s(user: TestParticipant, since: float) -> float:
    """Seconds of audible agent audio received since `since`."""
    frames = (a for a in user.audio if a.received_at >= since and a.rms >= MIN_RMS)
    return sum(a.samples.size for a in frames) / SAMPLE_RATE


def recorded(artifacts_dir: Path, room: str) -> list[dict[str, Any]]:
    files = sorted((artifacts_dir / "recordings-duplex").glob(f"{room}-*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


async def greeted(user: TestParticipant) -> None:
    """Until Moshi's greeting is heard (it speaks first, at once)."""
    await user.wait_for(
        lambda: user.agent_audio_after(0.0) is not None, timeout=30, what="Moshi's greeting"
    )


async def join(make: MakeParticipant, room: str, identity: str, agent: str, meta: str) -> Any:
    user = await make(room, identity, dispatch_agent=agent, metadata=meta)
    await user.publish_microphone()  # silence until it speaks, as a browser's microphone
    return user


async def test_moshi_greets_first_with_audio_and_caption(
    worker: WorkerHandle, make_participant: MakeParticipant, room_name: str
) -> None:
    user = await join(make_participant, room_name, "greeted", "duplex", MOSHI)
    await user.wait_for_agent(timeout=15)
    await greeted(user)
    await user.wait_for(
        lambda: any(SENTENCE in normalize(t) for t in agent_said(user)),
        timeout=15,
        what="the greeting's caption",
    )
    assert not user.user_captions()  # nobody spoke
    assert user.agents()[0].attributes.get("kyutai.character") == "moshi"
    # the face reads Moshi's monologue as it is heard, as it reads the cascade's replies
    await user.wait_for(
        lambda: "kyutai.affect" in user.agents()[0].attributes, timeout=10, what="the face"
    )
    assert user.agents()[0].attributes.get("kyutai.emotion") == "neutral"  # "howdy text"
    await user.leave()


async def test_the_user_is_captioned_and_moshi_answers_when_they_stop(
    worker: WorkerHandle, make_participant: MakeParticipant, room_name: str
) -> None:
    user = await join(make_participant, room_name, "talker", "duplex", MOSHI)
    await greeted(user)
    _onset, end = await user.say(speech_wav("Hello Moshi, how are you doing today?"))
    await user.wait_for(
        lambda: user.agent_audio_after(end) is not None, timeout=10, what="Moshi's answer"
    )
    print(f"first Moshi audio {(user.agent_audio_after(end) or 0) - end:.3f} s after the user")
    # the Kyutai STT's words for the user, on lk.transcription like the cascade's
    await user.wait_for(
        lambda: bool(user.user_captions()), timeout=15, what="a caption of the user's words"
    )
    await user.leave()


async def test_talking_over_moshi_silences_it_and_the_history_keeps_the_words_heard(
    worker: WorkerHandle,
    make_participant: MakeParticipant,
    room_name: str,
    artifacts_dir: Path,
) -> None:
    over, _ = read_wav(speech_wav("Oh really I never knew you were alive", lead_silence_s=0))
    # Two silent frames (160 ms) end the user's turn for the tiny Moshi, as a pause can for the
    # real one: a pause its Mimi hears would make it answer again, mid-sentence, by design.
    # (Checked first: it takes seconds, and the conversation below is timed.)
    assert_no_pause_moshi_hears(over)
    user = await join(make_participant, room_name, "interrupter", "duplex", MOSHI)
    await greeted(user)
    for _attempt in range(3):
        # A short question; Moshi answers 2 frames after it ends, and 0.45 s after its end the
        # user talks again, over the 0.72 s answer. (Waiting to hear the answer first would cut
        # it only after its last word: the talk-over takes about 0.5 s.)
        _onset, asked = await user.say(speech_wav("Are you there?", trail_silence_s=0.45))
        onset, end = await user.say_samples(over)
        answered = user.agent_audio_after(asked)
        if answered is not None and answered < end:
            break
        # Moshi heard the voice before it began to answer (a loaded machine can be that slow),
        # so it held its answer: once it has given it, ask again.
        print("Moshi waited for the user: asking again")
        await user.wait_for(
            lambda e=end: (
                user.agent_audio_after(e) is not None
                and user.agent_quiet_since(time.monotonic() - 0.5)
            ),
            timeout=15,
            what="Moshi's held answer, then quiet",
        )
    else:
        pytest.fail("Moshi never began an answer before the user talked again")
    # Moshi yields: at the listener, its audio stops soon after the onset and stays off while
    # the user speaks (nothing in the framework cut it: the model did)
    last = max(
        (a.received_at for a in user.audio if a.rms >= MIN_RMS and a.received_at < end), default=0
    )
    silenced = last - onset
    print(f"Moshi silent at the listener {silenced * 1000:.0f} ms after the user's onset")
    assert silenced < 1.0, f"Moshi's audio went on {silenced:.2f} s into the user's speech"
    # the history holds Moshi's words as heard: a cut answer is shorter than the sentence
    await user.leave()
    await user.wait_for(
        lambda: any(r.get("kind") == "end" for r in recorded(artifacts_dir, room_name)),
        timeout=20,
        what="the recording's end",
    )
    said = [
        normalize(r["text"])
        for r in recorded(artifacts_dir, room_name)
        if r.get("kind") == "message" and r.get("role") == "assistant"
    ]
    assert said and all(SENTENCE.startswith(s) for s in said), said
    assert any(s != SENTENCE for s in said), f"no cut answer in the history: {said}"


async def test_an_intent_runs_a_slow_tool_while_moshi_talks_and_the_card_reaches_the_room(
    worker: WorkerHandle, make_participant: MakeParticipant, room_name: str
) -> None:
    user = await make_participant(
        room_name, "curious", dispatch_agent="duplex", metadata='{"character": "moshi-lookup"}'
    )
    cards = user.listen("kyutai.tool")
    await user.publish_microphone()
    # Moshi's greeting says "howdy": the rule raises look_up_definition(term="text"), 1.5 s
    await greeted(user)
    # The user speaks only once the greeting has ended: a voice heard during it makes Moshi
    # yield, and a greeting cut after "howdy tex" (a slow step can let it get that far) passes
    # the word as far as it was said.
    await user.wait_for(
        lambda: user.agent_audio_stopped_after(0.0) is not None,
        timeout=15,
        what="the greeting's end",
    )
    # Moshi answers while the tool runs
    _onset, end = await user.say(speech_wav("Hi.", lead_silence_s=0.0))
    await user.wait_for(lambda: bool(cards), timeout=20, what="the tool card")
    card = json.loads(cards[0].text)
    assert card["name"] == "look_up_definition" and card["arguments"] == {"term": "text"}
    assert "text" in card["output"] and card["is_error"] is False
    answered = user.agent_audio_after(end)
    print(
        "Moshi answered during the tool"
        if answered is not None and answered < cards[0].received_at
        else "Moshi's answer came after the card"
    )
    await user.leave()


async def test_a_spoken_result_is_read_while_moshi_is_held_and_the_user_cuts_it(
    worker: WorkerHandle, make_participant: MakeParticipant, room_name: str
) -> None:
    over, _ = read_wav(speech_wav("Hmm hold on I am really not ready yet", lead_silence_s=0.0))
    # Moshi, released, would answer at a pause of two frames: the user must not pause
    assert_no_pause_moshi_hears(over)
    user = await join(
        make_participant, room_name, "clock", "duplex", '{"character": "moshi-clock"}'
    )
    # Moshi's greeting says "howdy" → current_time, spoken: once the greeting's burst is over,
    # the Kyutai TTS reads the date (seconds of speech) while Moshi is held
    await greeted(user)
    await user.wait_for(
        lambda: user.agent_quiet_since(time.monotonic() - 0.3), timeout=10, what="a pause"
    )
    paused = time.monotonic()
    # Talk over it once a word or two of it was heard: its caption is released as its audio
    # plays and sent when the segment ends, so a reading cut in its first word has no caption.
    # The reading's audible time is counted, not the wall clock: on a loaded machine the tiny
    # TTS on CPU may fall behind real time and leave gaps.
    await user.wait_for(
        lambda: heard_s(user, paused) >= 0.8, timeout=20, what="0.8 s of the reading"
    )
    onset, end = await user.say_samples(over)
    stopped = user.agent_audio_stopped_after(onset)
    print(f"the reading stopped {(stopped or onset) - onset:.3f} s after the user's onset")
    # talked over, the reading stops within a second (the agent cuts it: Moshi's own yielding
    # does not apply), and nothing of the agent is heard again until the user is done
    late = user.agent_audio_after(onset + 1.0)
    assert late is None or late >= end, (
        f"agent audio {late - onset:.2f} s into the user's {end - onset:.2f} s of speech"
    )
    # the reading's caption is the date, as far as it was heard
    await user.wait_for(
        lambda: any(not normalize(t).startswith("how") for t in agent_said(user)),
        timeout=10,
        what="the reading's caption",
    )
    # released: Moshi answers the user again
    await user.wait_for(
        lambda: user.agent_audio_after(end) is not None, timeout=10, what="Moshi, released"
    )
    await user.leave()


@pytest.fixture(scope="module")
def stubborn_worker(
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    stub_llm_server: StubLLM,
    characters_file: Path,
) -> Iterator[WorkerHandle]:
    with _server(artifacts_dir, "tiny/moshi-stubborn") as server:
        handle = _worker(
            livekit_server, artifacts_dir, server, stub_llm_server, characters_file, "stubborn"
        )
        yield handle
        handle.stop()


async def test_a_moshi_that_never_yields_is_heard_through_the_users_speech(
    stubborn_worker: WorkerHandle, make_participant: MakeParticipant, room_name: str
) -> None:
    user = await join(make_participant, room_name, "ignored", "stubborn", MOSHI)
    await greeted(user)
    onset, end = await user.say(
        speech_wav("I am talking and talking, but you never stop, do you?", lead_silence_s=0)
    )
    # nothing in the framework or the agent cuts Moshi: its audio goes on over the user
    heard = [a for a in user.audio if onset + 0.6 <= a.received_at <= end]
    loud = [a for a in heard if a.rms >= MIN_RMS]
    assert heard and len(loud) >= 0.7 * len(heard), (len(loud), len(heard))
    assert float(np.mean([a.rms for a in loud])) > MIN_RMS
    await user.leave()


async def test_a_lost_moshi_server_hands_the_call_to_the_next_then_the_room_is_told(
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    moshi_server: InferenceServer,
    stub_llm_server: StubLLM,
    characters_file: Path,
    make_participant: MakeParticipant,
    room_name: str,
) -> None:
    """Two Moshi servers: the one in use is killed mid-call → the session goes on with the
    other (a fresh Moshi, which greets again); that one killed too → the agent says why in the
    room (`kyutai.error`) and leaves."""
    args = ["--engines", "moshi", "--moshi-batch-size", "1"]
    first = start_inference_server(TINY, extra_args=args, log_dir=artifacts_dir / "logs")
    second = start_inference_server(TINY, extra_args=args, log_dir=artifacts_dir / "logs")
    worker: WorkerHandle | None = None
    try:
        worker = _worker(
            livekit_server,
            artifacts_dir,
            moshi_server,  # the user's STT stays up
            stub_llm_server,
            characters_file,
            "duplex-faults",
            moshi_url=f"{first.url},{second.url}",
        )
        user = await join(make_participant, room_name, "survivor", "duplex-faults", MOSHI)
        await greeted(user)
        agent = user.agents()[0].identity
        await user.wait_for(
            lambda: user.agent_quiet_since(time.monotonic() - 0.5), timeout=10, what="quiet"
        )
        killed = time.monotonic()
        first.process.kill()
        await user.wait_for(
            lambda: user.agent_audio_after(killed) is not None,
            timeout=30,
            what="Moshi again, from the second server",
        )
        assert [a.identity for a in user.agents()] == [agent]  # the same agent, same call
        second.process.kill()
        await user.wait_for(
            lambda: not user.agents() or bool(user.agents()[0].attributes.get("kyutai.error")),
            timeout=30,
            what="the room to be told",
        )
        told = [
            c.changed["kyutai.error"] for c in user.attribute_changes if "kyutai.error" in c.changed
        ]
        assert told and "Moshi is unavailable" in told[-1], told
        await user.wait_for(lambda: not user.agents(), timeout=30, what="the agent to leave")
        await user.leave()
    finally:
        if worker is not None:
            worker.stop()
        first.stop()
        second.stop()
