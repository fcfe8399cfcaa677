"""Tools in a duplex conversation: the words heard raise them (`intents`), the framework runs
them while Moshi keeps talking, and each result reaches the room as a card; a spoken rule's
result is read by the Kyutai TTS while Moshi is held silent, and the user's voice cuts it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, Protocol, runtime_checkable

from livekit import rtc
from livekit.agents import AgentSession, llm
from livekit.agents.voice import SpeechHandle

from agent.duplex.intents import IntentWatcher, Speaker
from agent.duplex.results import TOOL_TOPIC, card, spoken_text
from agent.log import logger


@runtime_checkable
class MoshiControls(Protocol):
    """What this needs of the duplex session (`kyutai.MoshiSession` has it)."""

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> str: ...
    async def hold(self) -> None: ...
    async def release(self) -> None: ...


class DuplexTools:
    def __init__(self, session: AgentSession[Any], room: rtc.Room, watcher: IntentWatcher) -> None:
        self.session, self.room, self.watcher = session, room, watcher
        self._spoken: set[str] = set()  # call ids whose result is read out
        self._reading: SpeechHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        s = self.session
        s.on("user_input_transcribed", self.on_user_transcript)
        s.on("conversation_item_added", self.on_item)
        s.on("function_tools_executed", self.on_tools_executed)
        s.on("user_state_changed", self.on_user_state)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _moshi(self) -> MoshiControls | None:
        try:
            duplex = self.session.current_agent.duplex_session
        except RuntimeError:  # not started, or closing
            return None
        return duplex if isinstance(duplex, MoshiControls) else None

    # --- words heard → calls ---------------------------------------------------------------
    def on_user_transcript(self, ev: Any) -> None:
        if ev.is_final:
            self._heard("user", ev.transcript)

    def on_item(self, ev: Any) -> None:
        item = ev.item
        if isinstance(item, llm.ChatMessage) and item.role == "assistant":
            self._heard("agent", item.text_content or "")  # one burst of Moshi's, as heard

    def _heard(self, speaker: Speaker, text: str) -> None:
        if not text.strip():
            return
        for call in self.watcher.heard(speaker, text):
            moshi = self._moshi()
            if moshi is None:
                logger.warning("intent for %s heard, but no Moshi session to call it", call.tool)
                return
            call_id = moshi.call_tool(call.tool, call.arguments)
            logger.info("intent: %s said %r → %s%s", speaker, text, call.tool, call.arguments)
            if call.rule.spoken:
                self._spoken.add(call_id)

    # --- results → the room ----------------------------------------------------------------
    def on_tools_executed(self, ev: Any) -> None:
        for call, output in zip(ev.function_calls, ev.function_call_outputs, strict=False):
            if output is None:
                continue
            self._spawn(self._show(card(call, output)))
            if call.call_id in self._spoken:
                self._spoken.discard(call.call_id)
                text = spoken_text(output)
                if text is not None:
                    self._spawn(self._read_out(text))

    async def _show(self, data: dict[str, Any]) -> None:
        try:
            await self.room.local_participant.send_text(json.dumps(data), topic=TOOL_TOPIC)
        except Exception as e:  # a room gone mid-call: nothing to show it to
            logger.warning("could not publish the %s card: %s", data.get("name"), e)

    async def _read_out(self, text: str) -> None:
        moshi = self._moshi()
        if moshi is None:
            return
        try:
            await moshi.hold()  # Moshi keeps listening, says nothing
        except Exception as e:
            logger.warning("cannot hold Moshi (%s): the result is shown, not read", e)
            return
        try:
            self._reading = self.session.say(text, allow_interruptions=True)
            await self._reading
        finally:
            self._reading = None
            try:
                await moshi.release()
            except Exception as e:
                logger.warning("cannot release Moshi: %s", e)

    def on_user_state(self, ev: Any) -> None:
        # Under a duplex model the framework does not cut speech on the user's voice (Moshi
        # handles its own); a result being read is ours to cut.
        if ev.new_state == "speaking" and self._reading is not None:
            self._reading.interrupt()
