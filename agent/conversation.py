"""The agent a room talks to: greeting, history handling, LLM failures, silence, goodbye."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import Agent, APIError, ModelSettings, llm
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
        on_llm_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(instructions=instructions, tools=tools)  # type: ignore[arg-type]
        self._options = options
        self._on_llm_error = on_llm_error

    async def on_enter(self) -> None:
        # The agent speaks first, as in Unmute: a short greeting written by the LLM.
        self.session.generate_reply(instructions=self._options.greeting_instructions)

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


BACKCHANNEL_NEVER_INTERRUPTS = 1000


def backchannel_words_needed(spoke_for_s: float, backchannel_max_s: float, min_words: int) -> int:
    """Words a finished user utterance needs to interrupt the (paused) agent.

    An utterance shorter than `backchannel_max_s` ("mm-hm", "yeah", "right") is a backchannel:
    it never interrupts, the agent resumes. Longer ones need `min_words` words.
    """
    if spoke_for_s < backchannel_max_s:
        return BACKCHANNEL_NEVER_INTERRUPTS
    return min_words


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
