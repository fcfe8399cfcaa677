"""Publishes the agent's affect to the room as participant attributes (the face contract).

Fed with what the listener hears (the agent's captions as the synchroniser releases them, read
sentence by sentence), the user's final transcripts, and the LLM's inline cues; the tracker
decides what the face shows and rate-limits it, and this module only schedules and sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents import AgentSession, UserInputTranscribedEvent

from agent.face.affect import Affect, AffectTracker, Label
from agent.face.cues import CueFilter
from agent.interruptions import room_output
from agent.log import logger

EMOTION_ATTRIBUTE = "kyutai.emotion"
AFFECT_ATTRIBUTE = "kyutai.affect"
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")

SetAttributes = Callable[[dict[str, str]], Awaitable[None]]


def attributes(affect: Affect, at: float) -> dict[str, str]:
    """The two attributes for `affect`, `at` seconds after the agent joined."""
    point = {"valence": affect.valence, "arousal": affect.arousal, "at": round(at, 3)}
    return {EMOTION_ATTRIBUTE: affect.label, AFFECT_ATTRIBUTE: json.dumps(point)}


class FacePublisher:
    def __init__(self, set_attributes: SetAttributes, tracker: AffectTracker) -> None:
        self._set = set_attributes
        self._tracker = tracker
        self._t0 = time.monotonic()
        self._sentence = ""
        self._cues: list[Label] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        self._closed = False

    def reply_started(self) -> None:
        """A new LLM reply: cues of one that was never heard are dropped."""
        self._cues.clear()

    def cue(self, label: Label) -> None:
        """An inline cue, applied when the reply's first words are heard."""
        self._cues.append(label)

    def heard(self, text: str) -> None:
        """Agent text as it reaches the listener; complete sentences are read."""
        for label in self._cues:
            self._tracker.observe_cue(label)
        applied = bool(self._cues)
        self._cues.clear()
        *done, self._sentence = _SENTENCE_END.split(self._sentence + text)
        for sentence in done:
            self._tracker.observe(sentence, "agent")
        if done or applied:
            self._publish()

    def reply_ended(self) -> None:
        if self._sentence.strip():
            self._tracker.observe(self._sentence, "agent")
            self._publish()
        self._sentence = ""

    def user_said(self, text: str) -> None:
        self._tracker.observe(text, "user")
        self._publish()

    def follow(self, session: AgentSession[Any]) -> None:
        """Once the session runs in the room: the agent's words as they are played, and the
        user's final transcripts (empathy), in both modes."""
        room_output.observe_heard_text(session, on_text=self.heard, on_flush=self.reply_ended)

        def on_transcribed(ev: UserInputTranscribedEvent) -> None:
            if ev.is_final and ev.transcript.strip():
                self.user_said(ev.transcript)

        session.on("user_input_transcribed", on_transcribed)

    async def close(self) -> None:
        """No more updates; the one in flight, if any, is let finish."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _publish(self) -> None:
        if self._closed:
            return
        now = self._now()  # one reading: the stamp is the time the rate limit decided on
        affect = self._tracker.due(now)
        if affect is not None:
            self._send(attributes(affect, now))
        at = self._tracker.next_at()
        if at is not None and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, at - self._now()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._publish()

    def _send(self, attrs: dict[str, str]) -> None:
        async def send() -> None:
            try:
                await self._set(attrs)
            except Exception as e:  # the room may be gone; the face is not worth a crash
                logger.warning("could not publish the face's affect: %s", e)

        # one at a time, in order: a late older update must not overwrite a newer one
        previous = self._sending

        async def chained() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await send()

        self._sending = asyncio.get_running_loop().create_task(chained())


class ReplyCues:
    """One LLM reply's cue filter: `strip` each text delta before speech, `flush` at the end;
    the cues found wait for the reply's first words to be heard."""

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
