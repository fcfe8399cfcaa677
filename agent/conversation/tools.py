"""Function tools the characters may use, grouped so each character gets its own set.

The names a character may list live in the catalogue (``catalog.characters.KNOWN_TOOLS``);
importing this module fails if the registry below offers other names.
"""

from __future__ import annotations

import asyncio
import datetime
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from livekit.agents import RunContext, function_tool, llm
from livekit.agents.llm import FunctionTool

from agent.log import logger
from catalog.characters import DEFAULT_TOOLS, KNOWN_TOOLS

# How long the stand-in course-notes lookup takes: long enough for its filler to be heard.
LOOKUP_SECONDS = 1.5


@dataclass
class LearnerRecord:
    question: str
    answer: str
    correct: bool


@dataclass
class SessionState:
    """What tools remember during one conversation."""

    timezone: str = "UTC"
    answers: list[LearnerRecord] = field(default_factory=list)
    now: Callable[[], datetime.datetime] = field(
        default=lambda: datetime.datetime.now(datetime.UTC)
    )

    @property
    def score(self) -> tuple[int, int]:
        return sum(1 for a in self.answers if a.correct), len(self.answers)


def describe_time(now: datetime.datetime, tz_name: str) -> str:
    try:
        tz: datetime.tzinfo = zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = datetime.UTC
    local = now.astimezone(tz)
    return local.strftime("%A %d %B %Y, %H:%M") + f" ({tz_name})"


@function_tool
async def current_time(context: RunContext[SessionState]) -> str:
    """Get the current date and time. Use it when the user asks for the time or the date."""
    state = context.userdata
    return describe_time(state.now(), state.timezone)


@function_tool
async def end_call(context: RunContext[SessionState]) -> str:
    """End the conversation. Call it after you have said goodbye, when the user wants to stop."""
    # Let the goodbye finish playing before the room is left.
    context.session.shutdown(drain=True)
    return "The call is ending."


@function_tool
async def record_answer(
    context: RunContext[SessionState], question: str, answer: str, correct: bool
) -> str:
    """Record the learner's answer to a question you asked, and whether it was correct.

    Args:
        question: the question, in a few words
        answer: what the learner answered
        correct: whether the answer was right
    """
    state = context.userdata
    state.answers.append(LearnerRecord(question, answer, correct))
    right, total = state.score
    return f"Recorded. Score so far: {right} correct out of {total}."


@function_tool
async def learner_progress(context: RunContext[SessionState]) -> str:
    """Summarise the learner's progress in this session (answers recorded so far)."""
    state = context.userdata
    right, total = state.score
    if total == 0:
        return "No answers recorded yet."
    missed = [a.question for a in state.answers if not a.correct]
    summary = f"{right} correct out of {total}."
    if missed:
        summary += " To review: " + "; ".join(missed[-5:]) + "."
    return summary


@function_tool
async def look_up_definition(context: RunContext[SessionState], term: str) -> str:
    """Look up a short reference definition of a term in the course notes (slow).

    Args:
        term: the word or concept to look up
    """
    # A stand-in for a slow knowledge-base call: the filler keeps the user company meanwhile,
    # except beside Moshi (a duplex model), who talks on by itself.
    if isinstance(context.session.llm, llm.RealtimeModel):
        await asyncio.sleep(LOOKUP_SECONDS)
        # the result is a card the user reads (and Moshi never sees): no advice to a model
        return f"No course notes mention '{term}' yet."
    async with context.with_filler("Let me check my notes.", delay=0.5):
        await asyncio.sleep(LOOKUP_SECONDS)
    return f"No course notes mention '{term}'; explain it from your own knowledge, briefly."


TOOLS: dict[str, FunctionTool] = {
    "current_time": current_time,
    "end_call": end_call,
    "record_answer": record_answer,
    "learner_progress": learner_progress,
    "look_up_definition": look_up_definition,
}


def check_registry(registry: Mapping[str, FunctionTool]) -> None:
    """Raise ``RuntimeError`` unless ``registry`` offers exactly the catalogue's tool names."""
    missing, extra = sorted(KNOWN_TOOLS - set(registry)), sorted(set(registry) - KNOWN_TOOLS)
    if missing or extra:
        raise RuntimeError(
            f"the tool registry does not match catalog.characters.KNOWN_TOOLS: "
            f"missing {missing}, not in the catalogue {extra}"
        )


check_registry(TOOLS)


def tools_for(names: list[str] | tuple[str, ...]) -> list[FunctionTool]:
    """The tools a character lists; unknown names are logged and skipped."""
    selected: list[FunctionTool] = []
    for name in dict.fromkeys([*DEFAULT_TOOLS, *names]):
        tool = TOOLS.get(name)
        if tool is None:
            logger.warning("unknown tool %r in characters file; known: %s", name, sorted(TOOLS))
            continue
        selected.append(tool)
    return selected
