"""The agent a room talks to: greeting, history handling, LLM failures, silence, goodbye."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import Agent, APIError, ModelSettings, llm, stt
from livekit.agents.llm.utils import ThinkingTokenFilter, strip_thinking_tokens

from . import history
from .log import logger
from .metrics import ERRORS

APOLOGY = {
    "en": "Sorry, I lost my train of thought for a moment. Could you say that again?",
    "fr": "Pardon, j'ai perdu le fil un instant. Vous pouvez répéter ?",
}
SILENCE_MESSAGE = "..."  # what the LLM sees when the user stayed silent (the prompt explains it)


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
    max_silent_turns: int = 3


class KyutaiAgent(Agent):
    def __init__(
        self,
        *,
        instructions: str,
        tools: list[llm.FunctionTool],
        options: ConversationOptions,
        backchannels: BackchannelFilter | None = None,
        on_llm_error: Callable[[BaseException], None] | None = None,
        on_user_audio: Callable[[rtc.AudioFrame], None] | None = None,
    ) -> None:
        super().__init__(instructions=instructions, tools=tools)  # type: ignore[arg-type]
        self._options = options
        self._backchannels = backchannels
        self._on_llm_error = on_llm_error
        self._on_user_audio = on_user_audio

    async def on_enter(self) -> None:
        # The agent speaks first, as in Unmute: a short greeting written by the LLM.
        self.session.generate_reply(instructions=self._options.greeting_instructions)

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        if self._on_user_audio is not None:
            audio = _observed(audio, self._on_user_audio)
        events = Agent.default.stt_node(self, audio, model_settings)
        async for event in events:
            if (
                self._backchannels is not None
                and isinstance(event, stt.SpeechEvent)
                and event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
            ):
                text = event.alternatives[0].text if event.alternatives else ""
                if self._backchannels.is_backchannel(text):
                    logger.info("backchannel %r over the agent: not an interruption", text)
                    self._backchannels.consumed()
                    continue
                self._backchannels.consumed()
            yield event

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterable[llm.ChatChunk | str]:
        ctx = prepare_context(chat_ctx, self._options.context_tokens)
        think = ThinkingTokenFilter()
        produced = False
        try:
            async for chunk in Agent.default.llm_node(self, ctx, tools, model_settings):
                if isinstance(chunk, llm.ChatChunk) and chunk.delta and chunk.delta.content:
                    # Reasoning models that inline <think>…</think> must not read it aloud.
                    visible = strip_thinking_tokens(chunk.delta.content, think)
                    chunk.delta.content = visible or None
                    if not visible and not chunk.delta.tool_calls:
                        continue
                    produced = True
                elif isinstance(chunk, str):
                    chunk = strip_thinking_tokens(chunk, think) or ""
                    if not chunk:
                        continue
                    produced = True
                yield chunk  # type: ignore[misc]
        except (APIError, TimeoutError) as exc:
            ERRORS.labels(stage="llm").inc()
            logger.warning("LLM failed (%s); apologising and carrying on", exc)
            if self._on_llm_error:
                self._on_llm_error(exc)
            yield (" " if produced else "") + APOLOGY.get(self._options.language, APOLOGY["en"])


class SilencePolicy:
    """Unmute's silence handling: nudge after each silence, say goodbye after too many.

    Pure state: the session code asks what to do when the user goes quiet.
    """

    def __init__(self, max_silent_turns: int = 3) -> None:
        self.max_silent_turns = max_silent_turns
        self.silent_turns = 0

    def on_user_spoke(self) -> None:
        self.silent_turns = 0

    def on_silence(self) -> str:
        """'nudge' or 'goodbye'."""
        self.silent_turns += 1
        return "goodbye" if self.silent_turns >= self.max_silent_turns else "nudge"


class BackchannelFilter:
    """Tells a backchannel ("mm-hm", "yeah") said over the agent from a real interruption.

    LiveKit pauses the agent as soon as the user makes a sound and resumes it if no transcript
    follows; but any final transcript interrupts it for good. So the agent's STT node drops the
    final transcript of an utterance that overlapped the agent's speech and was short (under
    `max_s` of speech) or had fewer than `min_words` words: the paused agent then resumes.
    """

    def __init__(self, max_s: float, min_words: int) -> None:
        self.max_s = max_s
        self.min_words = min_words
        self._overlapping = False
        self._spoke_for: float | None = None

    def user_started(self, *, agent_speaking: bool) -> None:
        self._overlapping = agent_speaking
        self._spoke_for = None

    def user_stopped(self, spoke_for_s: float) -> None:
        self._spoke_for = spoke_for_s

    def is_backchannel(self, transcript: str) -> bool:
        if not self._overlapping:
            return False
        short = self._spoke_for is not None and self._spoke_for < self.max_s
        return short or len(transcript.split()) < self.min_words

    def consumed(self) -> None:
        self._overlapping = False


def goodbye_said(text: str) -> bool:
    """Whether a message ends the conversation (Unmute hangs up on a reply ending in 'bye!')."""
    words = "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()
    tail = words[-4:]
    return any(w in ("bye", "goodbye", "revoir", "ciao") for w in tail)


def silence_reply_kwargs(action: str, language: str) -> dict[str, Any]:
    if action == "goodbye":
        text = (
            "L'utilisateur ne répond plus. Dis au revoir brièvement."
            if language == "fr"
            else "The user has stayed silent several times. Say a brief goodbye."
        )
        return {"user_input": SILENCE_MESSAGE, "instructions": text}
    return {"user_input": SILENCE_MESSAGE}
