"""The agent a room talks to: greeting, history handling, LLM failures, silence, goodbye."""

from __future__ import annotations

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
    ) -> None:
        super().__init__(instructions=instructions, tools=tools)  # type: ignore[arg-type]
        self._options = options
        self._interruptions = interruptions
        self._face = face

    async def on_enter(self) -> None:
        # The agent speaks first, as in Unmute: a short greeting written by the LLM.
        self.session.generate_reply(instructions=self._options.greeting_instructions)

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        if self._interruptions is None:
            async for plain in Agent.default.stt_node(self, audio, model_settings):
                yield plain
            return
        audio = _observed(audio, self._interruptions.on_user_audio)
        events = Agent.default.stt_node(self, audio, model_settings)
        async for event in self._interruptions.filter_transcripts(events):
            yield event

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
                    produced = True
                elif isinstance(chunk, str):
                    chunk = strip_thinking_tokens(chunk, think) or ""
                    if chunk and cues is not None:
                        chunk = cues.strip(chunk)
                    if not chunk:
                        continue
                    produced = True
                yield chunk  # type: ignore[misc]
            if cues is not None and (held := cues.flush()):
                yield held  # an opening bracket that was not a cue after all
        except (APIError, TimeoutError) as exc:
            ERRORS.labels(stage="llm").inc()
            logger.warning("LLM failed (%s); apologising and carrying on", exc)
            yield (" " if produced else "") + APOLOGY.get(self._options.language, APOLOGY["en"])
