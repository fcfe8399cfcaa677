"""The face's taps on the agent's pipeline: inline cues out of the LLM's text before speech,
and the words the listener hears into the affect tracker."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

from livekit.agents import Agent, ModelSettings
from livekit.agents.voice.io import TimedString

from agent.face.cues import CueFilter
from agent.face.publisher import FacePublisher
from agent.log import logger

T = TypeVar("T", bound=str)


class ReplyCues:
    """One LLM reply's cue filter: `strip` each text delta, `flush` at the end."""

    def __init__(self, face: FacePublisher) -> None:
        self._face = face
        self._filter = CueFilter()
        face.reply_started()

    def strip(self, delta: str) -> str:
        text, cues = self._filter.feed(delta)
        for label in cues:
            self._face.cue(label)
        return text

    def flush(self) -> str:
        if self._filter.unknown:
            logger.info("emotion cues with no face preset ignored: %s", self._filter.unknown)
        return self._filter.flush()


async def heard(face: FacePublisher, text: AsyncIterable[T]) -> AsyncIterator[T]:
    """`text` unchanged, each delta shown to the face as it reaches the listener."""
    try:
        async for delta in text:
            try:
                face.heard(delta)
            except Exception:  # the face must never cost the agent its captions
                logger.exception("face affect update failed")
            yield delta
    finally:
        face.reply_ended()


class FaceAgent(Agent):
    """An agent whose words, as the listener hears them, move its face (both modes)."""

    _face: FacePublisher | None = None

    async def transcription_node(
        self, text: AsyncIterable[str | TimedString], model_settings: ModelSettings
    ) -> AsyncIterable[str | TimedString]:
        out = Agent.default.transcription_node(self, text, model_settings)
        async for delta in out if self._face is None else heard(self._face, out):
            yield delta
