"""The agent a room talks to: greeting, history handling, LLM failures, silence, goodbye."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import Agent, APIError, ModelSettings, llm, stt
from livekit.agents.llm.utils import ThinkingTokenFilter, strip_thinking_tokens

from agent.conversation import history
from agent.face.publisher import FacePublisher, ReplyCues
from agent.interruptions import Interruptions
from agent.log import logger
from agent.ops.metrics import ERRORS
from agent.ops.waterfall import Waterfall, is_voiced

APOLOGY = {
    "en": "Sorry, I lost my train of thought for a moment. Could you say that again?",
    "fr": "Pardon, j'ai perdu le fil un instant. Vous pouvez répéter ?",
}


def to_messages(chat_ctx: llm.ChatContext) -> list[history.Message]:
    """The framework's chat items as history messages; tool items ride on the message before."""
    out: list[history.Message] = []
    for item in chat_ctx.items:
        if item.type == "message":
            out.append(
                history.Message(item.role, item.text_content or "", interrupted=item.interrupted)
            )
        elif item.type in ("function_call", "function_call_output"):
            text = getattr(item, "arguments", None) or getattr(item, "output", "") or ""
            tokens = history.estimate_tokens(str(text))
            if out and out[-1].role not in ("system", "developer"):
                last = out[-1]
                out[-1] = history.Message(
                    last.role,
                    last.text,
                    last.interrupted,
                    attachments=(*last.attachments, item),
                    attachment_tokens=last.attachment_tokens + tokens,
                )
            else:
                out.append(
                    history.Message("assistant", "", attachments=(item,), attachment_tokens=tokens)
                )
    return out


def to_chat_ctx(messages: list[history.Message]) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    for msg in messages:
        if msg.text:
            ctx.add_message(role=msg.role, content=msg.text)  # type: ignore[arg-type]
        for item in msg.attachments:
            ctx.items.append(item)  # type: ignore[arg-type]
    return ctx


def prepare_context(chat_ctx: llm.ChatContext, max_tokens: int) -> llm.ChatContext:
    """What the LLM sees: cleaned history, cut-off answers marked, oldest turns dropped."""
    return to_chat_ctx(history.fit_budget(history.clean(to_messages(chat_ctx)), max_tokens))


async def _observed(
    audio: AsyncIterable[rtc.AudioFrame], observer: Callable[[rtc.AudioFrame], None]
) -> AsyncIterator[rtc.AudioFrame]:
    """The user's audio, each frame shown to `observer` as it passes to the STT."""
    async for frame in audio:
        try:
            observer(frame)
        except Exception:  # an observer's bug must not deafen the agent
            logger.exception("user audio observer failed")
        yield frame


async def _first_marked(
    items: AsyncIterable[str], on_first: Callable[[], None]
) -> AsyncIterator[str]:
    first = True
    async for item in items:
        if first and item:
            first = False
            on_first()
        yield item


@dataclass(frozen=True)
class ConversationOptions:
    language: str
    greeting_instructions: str
    context_tokens: int


class KyutaiAgent(Agent):
    def __init__(
        self,
        *,
        instructions: str,
        tools: list[llm.FunctionTool],
        options: ConversationOptions,
        interruptions: Interruptions | None = None,
        face: FacePublisher | None = None,
        waterfall: Waterfall | None = None,
    ) -> None:
        super().__init__(instructions=instructions, tools=tools)  # type: ignore[arg-type]
        self._options = options
        self._interruptions = interruptions
        self._face = face
        self._waterfall = waterfall

    async def on_enter(self) -> None:
        # The agent speaks first, as in Unmute: a short greeting written by the LLM.
        self.session.generate_reply(instructions=self._options.greeting_instructions)

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        wf = self._waterfall
        if wf is not None:
            audio = _observed(audio, lambda f: wf.voice(time.monotonic()) if is_voiced(f) else None)
        if self._interruptions is not None:
            audio = _observed(audio, self._interruptions.on_user_audio)
        events: AsyncIterable[stt.SpeechEvent | str] = Agent.default.stt_node(
            self, audio, model_settings
        )
        if self._interruptions is not None:
            events = self._interruptions.filter_transcripts(events)
        async for event in events:
            if (
                wf is not None
                and isinstance(event, stt.SpeechEvent)
                and event.type == stt.SpeechEventType.END_OF_SPEECH
            ):
                wf.end_of_speech(time.monotonic())
            yield event

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        if self._waterfall is not None:
            self._waterfall.turn_committed(time.monotonic())

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterable[rtc.AudioFrame]:
        wf = self._waterfall
        if wf is None:
            async for frame in Agent.default.tts_node(self, text, model_settings):
                yield frame
            return
        text = _first_marked(text, lambda: wf.mark("tts_first_text", time.monotonic()))
        first = True
        async for frame in Agent.default.tts_node(self, text, model_settings):
            if first:  # later frames belong to this reply even after its marks are closed
                first = False
                wf.mark("tts_first_audio", time.monotonic())
            yield frame

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterable[llm.ChatChunk | str]:
        ctx = prepare_context(chat_ctx, self._options.context_tokens)
        think = ThinkingTokenFilter()
        cues = ReplyCues(self._face) if self._face is not None else None
        produced = False
        wf = self._waterfall
        if wf is not None:
            wf.mark("llm_request", time.monotonic())
        try:
            async for chunk in Agent.default.llm_node(self, ctx, tools, model_settings):
                if isinstance(chunk, llm.ChatChunk) and chunk.delta and chunk.delta.content:
                    # Reasoning models that inline <think>…</think> must not read it aloud, nor
                    # the face's [emotion: …] cues.
                    visible = strip_thinking_tokens(chunk.delta.content, think)
                    if visible and cues is not None:
                        visible = cues.strip(visible)
                    chunk.delta.content = visible or None
                    if not visible and not chunk.delta.tool_calls:
                        continue
                    if wf is not None and not produced:
                        wf.mark("llm_first_token", time.monotonic())
                    produced = True
                elif isinstance(chunk, str):
                    chunk = strip_thinking_tokens(chunk, think) or ""
                    if chunk and cues is not None:
                        chunk = cues.strip(chunk)
                    if not chunk:
                        continue
                    if wf is not None and not produced:
                        wf.mark("llm_first_token", time.monotonic())
                    produced = True
                yield chunk  # type: ignore[misc]
            if cues is not None and (held := cues.flush()):
                yield held  # an opening bracket that was not a cue after all
        except (APIError, TimeoutError) as exc:
            ERRORS.labels(stage="llm").inc()
            logger.warning("LLM failed (%s); apologising and carrying on", exc)
            yield (" " if produced else "") + APOLOGY.get(self._options.language, APOLOGY["en"])
