"""Function tools the characters may use, grouped so each character gets its own set."""

from __future__ import annotations

import asyncio
import datetime
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import RunContext, function_tool, get_job_context
from livekit.agents.llm import FunctionTool

from agent.log import logger


@dataclass
class LearnerRecord:
    question: str
    answer: str
    correct: bool


@dataclass
class SessionState:
    """What tools remember during one conversation (also written to the transcript file)."""

    timezone: str = "UTC"
    answers: list[LearnerRecord] = field(default_factory=list)
    end_requested: bool = False
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
    context.userdata.end_requested = True
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
    # A stand-in for a slow knowledge-base call: the filler keeps the user company meanwhile.
    async with context.with_filler("Let me check my notes.", delay=0.5):
        await asyncio.sleep(_lookup_seconds())
    return f"No course notes mention '{term}'; explain it from your own knowledge, briefly."


def _lookup_seconds() -> float:
    try:
        job = get_job_context()
    except RuntimeError:
        return 1.5
    meta: dict[str, Any] = job.proc.userdata.get("tool_latency", {})
    return float(meta.get("lookup", 1.5))


TOOLS: dict[str, FunctionTool] = {
    "current_time": current_time,
    "end_call": end_call,
    "record_answer": record_answer,
    "learner_progress": learner_progress,
    "look_up_definition": look_up_definition,
}
DEFAULT_TOOLS = ("current_time", "end_call")


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
