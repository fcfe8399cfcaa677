"""The Interruptions object: what it lets through from the STT, and how it attaches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

from livekit.agents import stt

from agent.interruptions import Interruptions
from agent.settings import AgentSettings


class FakeSession:
    def __init__(self, *, audio: Any = None) -> None:
        self.agent_state = "speaking"
        self.user_state = "listening"
        self.current_speech = None
        self.output = SimpleNamespace(audio=audio)
        self.handlers: dict[str, list[Callable[[Any], None]]] = {}

    def on(self, event: str, handler: Callable[[Any], None]) -> None:
        self.handlers.setdefault(event, []).append(handler)

    def emit(self, event: str, ev: Any) -> None:
        for handler in self.handlers.get(event, []):
            handler(ev)


def final(text: str, start: float, end: float) -> stt.SpeechEvent:
    return stt.SpeechEvent(
        type=stt.SpeechEventType.FINAL_TRANSCRIPT,
        alternatives=[stt.SpeechData(language="en", text=text, start_time=start, end_time=end)],
    )


async def passed(interruptions: Interruptions, *events: stt.SpeechEvent) -> list[str]:
    async def source() -> AsyncIterator[stt.SpeechEvent | str]:
        for ev in events:
            yield ev

    out = [ev async for ev in interruptions.filter_transcripts(source())]
    return [e.alternatives[0].text for e in out if isinstance(e, stt.SpeechEvent)]


def interruptions() -> tuple[Interruptions, FakeSession]:
    made = Interruptions.from_settings(AgentSettings().interruptions)
    session = FakeSession()
    made.attach(session)  # no room output: LiveKit's own barge-in only
    return made, session


def test_without_a_room_output_there_is_no_gate() -> None:
    made, session = interruptions()
    assert made.gate is None
    assert "user_state_changed" in session.handlers and "close" in session.handlers


async def test_a_backchannel_over_the_agent_is_dropped_before_the_vad_has_timed_it() -> None:
    # The STT's final can come before Silero ends the speech: its word times decide.
    made, session = interruptions()
    session.emit("user_state_changed", SimpleNamespace(old_state="listening", new_state="speaking"))
    assert await passed(made, final("yeah yeah", 10.0, 10.4)) == []  # two words: timing decides


async def test_words_over_the_agent_are_an_interruption() -> None:
    made, session = interruptions()
    session.emit("user_state_changed", SimpleNamespace(old_state="listening", new_state="speaking"))
    said = "wait tell me about the moon"
    assert await passed(made, final(said, 10.0, 11.5)) == [said]


async def test_a_short_answer_to_a_listening_agent_is_a_turn() -> None:
    made, session = interruptions()
    session.agent_state = "listening"
    session.emit("user_state_changed", SimpleNamespace(old_state="listening", new_state="speaking"))
    assert await passed(made, final("yes", 10.0, 10.3)) == ["yes"]


def test_turn_handling_follows_the_settings() -> None:
    settings = AgentSettings(KYUTAI_TURN_DETECTION="vad", KYUTAI_MIN_INTERRUPTION_S=0.2)
    handling = Interruptions.from_settings(settings.interruptions).turn_handling()
    assert handling["turn_detection"] == "vad"
    assert handling["interruption"]["min_duration"] == 0.2
    assert handling["interruption"]["min_words"] == 0  # the backchannel rule decides later
