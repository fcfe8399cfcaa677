"""What the worker does with a running session's events, one named method per event:
latency metrics, the transcript recording, the silence policy, goodbyes, the end of the job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from livekit.agents import AgentSession, JobContext, MetricsCollectedEvent, llm, metrics
from livekit.plugins import kyutai

from agent.conversation.silence import (
    SilenceAction,
    SilencePolicy,
    goodbye_said,
    is_silence,
    silence_reply_kwargs,
)
from agent.conversation.tools import SessionState
from agent.interruptions.room_output import room_sink
from agent.log import logger
from agent.ops import dispatch
from agent.ops import metrics as agent_metrics
from agent.ops.recordings import Recording, opted_out
from agent.ops.waterfall import Waterfall, hop_durations, log_line
from catalog.dispatch import RoomChoice


class SessionEvents:
    def __init__(
        self,
        ctx: JobContext,
        session: AgentSession[SessionState],
        choice: RoomChoice,
        *,
        agent_name: str,
        max_silent_turns: int,
        recording: Recording | None,
        duplex: bool = False,
        waterfall: Waterfall | None = None,
    ) -> None:
        self.ctx, self.session, self.choice, self.recording = ctx, session, choice, recording
        # Moshi: its "bye" ends nothing (the user's goodbye intent may), it never goes silent
        # on a failed model: the room is told and the session ends
        self.duplex = duplex
        self.agent_name = agent_name
        self.said_goodbye = False  # the conversation ended on purpose: no other agent after us
        self.silence = SilencePolicy(max_silent_turns)
        self.waterfall = waterfall  # the reply's marks (cascade only)
        self.usage = metrics.UsageCollector()
        self._tasks: set[asyncio.Task[None]] = set()
        self._telling: asyncio.Task[None] | None = None  # telling the room why we leave

    def attach(self) -> None:
        """Before `session.start()`, so that nothing the session says is missed."""
        s = self.session
        s.on("metrics_collected", self.on_metrics)
        s.on("agent_state_changed", self.on_agent_state)
        s.on("agent_false_interruption", self.on_false_interruption)
        s.on("error", self.on_error)
        s.on("conversation_item_added", self.on_item)
        s.on("user_state_changed", self.on_user_state)
        s.on("close", self.on_close)
        self.ctx.room.on("participant_attributes_changed", self.on_attributes)
        self._record(
            "session",
            room=self.ctx.room.name,
            character=self.choice.character_id,
            language=self.choice.language,
            subject=self.choice.subject,
            level=self.choice.level,
        )

    def _record(self, kind: str, **fields: Any) -> None:
        if self.recording is not None and not self.recording.deleted:
            self.recording.write(kind, **fields)

    def on_metrics(self, ev: MetricsCollectedEvent) -> None:
        m = ev.metrics
        self.usage.collect(m)
        # tts_ttfb and end_to_end are observed when the reply starts playing (on_playout), so
        # that a reply cut before its TTS finished still counts
        if isinstance(m, metrics.EOUMetrics):
            agent_metrics.observe_stage("end_of_turn", m.end_of_utterance_delay)
            agent_metrics.observe_stage("transcript", m.transcription_delay)
        elif isinstance(m, metrics.LLMMetrics):
            agent_metrics.observe_stage("llm_ttft", m.ttft)

    def follow_playout(self) -> None:
        """After `session.start()`: each reply's first frame into the room closes its marks."""
        if self.waterfall is None:
            return
        sink = room_sink(self.session)
        if sink is None:
            logger.warning("no room audio output: no latency waterfall")
            return
        sink.on("playback_started", lambda _ev: self.on_playout(time.monotonic()))

    def on_playout(self, now: float) -> None:
        # called from the room output's forwarding loop: a bug here must not stop the audio
        try:
            self._close_waterfall(now)
        except Exception:
            logger.exception("latency waterfall failed")

    def _close_waterfall(self, now: float) -> None:
        assert self.waterfall is not None
        turn = self.waterfall.playout_started(now)
        if turn.tts_ttfb is not None:
            agent_metrics.observe_stage("tts_ttfb", turn.tts_ttfb)
        if turn.end_to_end is not None:
            agent_metrics.observe_stage("end_to_end", turn.end_to_end)
        hops = {k: round(v, 4) for k, v in hop_durations(turn.marks).items() if v is not None}
        logger.info("%s", log_line(self.ctx.room.name, turn))
        self._record("latency", answers_user=turn.answers_user, hops=hops)

    def on_agent_state(self, ev: Any) -> None:
        logger.debug("agent state %s -> %s", ev.old_state, ev.new_state)

    def on_false_interruption(self, _ev: Any) -> None:
        agent_metrics.FALSE_INTERRUPTIONS.inc()

    def on_error(self, ev: Any) -> None:
        stage = str(getattr(ev.error, "type", "unknown")).replace("_error", "")
        agent_metrics.ERRORS.labels(stage=stage).inc()
        if self.duplex and not getattr(ev.error, "recoverable", True):
            # the session closes on it: say why in the room before the agent leaves
            inner = getattr(ev.error, "error", None) or ev.error
            self._telling = self._spawn(self._tell_room(f"Moshi is unavailable: {inner}"))
        if isinstance(getattr(ev.error, "error", None), kyutai.AtCapacityError):
            # Waiting here would leave the person with a mute agent: leave, and the dispatcher
            # gives the room to a worker with a free slot (the room keeps its dispatch).
            logger.warning("no free %s slot: giving the room back", stage)
            self.session.shutdown(drain=False)

    def on_item(self, ev: Any) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage):
            return
        text = item.text_content or ""
        if item.role == "assistant" and item.interrupted:
            agent_metrics.INTERRUPTIONS.inc()
        if item.role == "user" and text.strip() and not is_silence(text):
            self.silence.on_user_spoke()
        self._record("message", role=item.role, text=text, interrupted=item.interrupted)
        if item.role == "user" and goodbye_said(text):
            logger.info("the user said goodbye")
        if item.role == "assistant" and goodbye_said(text) and not item.interrupted:
            if self.duplex:
                return
            logger.info("the agent said goodbye: ending the session")
            self.said_goodbye = True
            self.session.shutdown(drain=True)

    def on_user_state(self, ev: Any) -> None:
        logger.debug("user state %s -> %s", ev.old_state, ev.new_state)
        if ev.new_state == "speaking":
            self.silence.on_user_spoke()
        if ev.new_state != "away":
            return
        action = self.silence.on_silence()
        logger.info("user silent (%d): %s", self.silence.silent_turns, action)
        self._spawn(self._answer_silence(action))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _told(self) -> None:
        """The room hears why before the agent leaves it (a shutdown callback)."""
        if self._telling is not None:
            await asyncio.wait({self._telling}, timeout=5)

    async def _tell_room(self, message: str) -> None:
        logger.error("%s", message)
        try:
            await self.ctx.room.local_participant.set_attributes(
                {dispatch.ERROR_ATTRIBUTE: message[: dispatch.MAX_WARNING_CHARS]}
            )
        except Exception as e:  # the room is gone already
            logger.warning("could not tell the room: %s", e)

    async def _answer_silence(self, action: SilenceAction) -> None:
        handle = self.session.generate_reply(**silence_reply_kwargs(action, self.choice.language))
        await handle
        if action == "goodbye":
            self.said_goodbye = True
            self.session.shutdown(drain=True)
        else:
            self.session.reset_away_timer()

    def on_attributes(self, changed: dict[str, str], _participant: Any) -> None:
        if self.recording is not None and not self.recording.deleted and opted_out(changed):
            self.recording.delete()

    def on_close(self, ev: Any) -> None:
        reason = getattr(ev, "reason", "")
        logger.info("session closed (%s), ending the job", reason)
        if self.recording is not None and not self.recording.deleted:
            self.recording.write("end", reason=str(reason), usage=str(self.usage.get_summary()))
            self.recording.close()
        if self.said_goodbye:
            self.ctx.add_shutdown_callback(self._release_room)
        if self._telling is not None:
            self.ctx.add_shutdown_callback(self._told)
        self.ctx.shutdown(reason="session closed")

    async def _release_room(self) -> None:
        await dispatch.release_room(self.ctx, self.agent_name)
