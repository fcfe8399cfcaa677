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
