"""The patches of LiveKit's room output are written against the pinned livekit-agents."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from types import SimpleNamespace

from livekit.agents.voice.room_io import _output

from agent.interruptions import room_output


def test_the_pin_is_the_installed_livekit_agents() -> None:
    assert version("livekit-agents") == room_output.LIVEKIT_AGENTS_PINNED


def test_the_room_output_still_has_what_is_patched() -> None:
    source = inspect.getsource(_output._ParticipantAudioOutput)
    for name in room_output._QUEUE_INTERNALS:
        assert f"self.{name}" in source, name


def test_an_unknown_output_keeps_its_queue_and_still_reports_pauses() -> None:
    calls: list[str] = []
    sink = SimpleNamespace(
        _audio_source=object(),  # found as the room end of the chain, but not the known one
        pause=lambda: calls.append("pause"),
        resume=lambda: calls.append("resume"),
    )
    session = SimpleNamespace(output=SimpleNamespace(audio=sink))
    assert room_output.missing_internals(sink)
    heard: list[str] = []
    patched = room_output.patch(
        session, observers=[(lambda: heard.append("p"), lambda: heard.append("r"))]
    )
    assert patched is sink
    sink.pause()
    sink.resume()
    assert calls == ["pause", "resume"] and heard == ["p", "r"]


class _Text:
    """A text output of LiveKit's shape: a label, the next in chain, capture_text, flush."""

    def __init__(self, next_in_chain: _Text | None = None) -> None:
        self.next_in_chain = next_in_chain
        self.got: list[str] = []
        self.flushed = 0

    async def capture_text(self, text: str) -> None:
        self.got.append(text)

    def flush(self) -> None:
        self.flushed += 1


async def test_the_face_hears_the_words_the_room_is_sent_at_the_end_of_the_chain() -> None:
    room = _Text()
    synced = _Text(next_in_chain=room)  # the synchroniser releases to the room's output
    session = SimpleNamespace(output=SimpleNamespace(transcription=synced))
    heard: list[str] = []
    ends: list[bool] = []
    assert room_output.observe_heard_text(
        session, on_text=heard.append, on_flush=lambda: ends.append(True)
    )
    await synced.capture_text("not yet played")  # upstream of the synchroniser: not heard
    await room.capture_text("Hello ")
    room.flush()
    assert heard == ["Hello "] and ends == [True]
    assert room.got == ["Hello "] and room.flushed == 1  # the room still gets everything


async def test_a_failing_observer_does_not_cost_the_captions() -> None:
    room = _Text()
    session = SimpleNamespace(output=SimpleNamespace(transcription=room))

    def broken(_text: str) -> None:
        raise RuntimeError("face bug")

    room_output.observe_heard_text(session, on_text=broken, on_flush=lambda: None)
    await room.capture_text("Hi")
    assert room.got == ["Hi"]


def test_no_transcription_output_is_reported() -> None:
    session = SimpleNamespace(output=SimpleNamespace(transcription=None))
    assert not room_output.observe_heard_text(session, on_text=print, on_flush=lambda: None)


def test_the_room_transcription_output_is_the_end_of_the_chain() -> None:
    # what observe_heard_text wraps on the pinned version
    params = inspect.signature(_output._ParticipantTranscriptionOutput.capture_text).parameters
    assert list(params) == ["self", "text"]
