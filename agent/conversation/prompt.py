"""The system prompt and the greeting for a room: fixed sections about speaking, plus the
character's own part, built from one table entry per instruction type.

Pure: ``build_system_prompt`` takes the clock and the random generator as arguments. The prompt
data (question bank, tutor plans, conversation starters) is catalogue content: read and checked
against the characters once at start-up by ``catalog.load.load_catalog`` (schema, loader and what
each instruction type needs from it: ``catalog/prompt_data.py``). The wording lives in
``texts.py``; this module picks it and fills it in.

Contract with the conversation code:

* a user message that is exactly ``SILENCE_MESSAGE`` means the user stayed silent; the prompt
  asks for a gentle nudge, and for a goodbye after ``max_silent_turns`` in a row (a setting);
* to end the conversation the model says a short goodbye ending with ``GOODBYE[language]`` and
  calls the ``end_call`` tool (when the character has it), so both tool-based and text-based
  goodbye detection work.

Adding an instruction type: one class in ``catalog/characters.py``, what it needs from the
prompt data in ``catalog/prompt_data.py`` (``NEEDS``), its wording in ``texts.py`` and one entry
in ``BY_TYPE`` below (unit tests check every type has an entry in both tables).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.conversation.silence import GOODBYE, SILENCE_MESSAGE
from agent.conversation.texts import (
    TEXTS,
    TIMES_OF_DAY,
    WEEKDAYS,
    Texts,
    TimeOfDay,
    level_name,
    number_words,
    texts_for,
)
from catalog.characters import ConstantInstructions, InstructionType, QuizShowInstructions
from catalog.dispatch import RoomChoice
from catalog.prompt_data import PromptData, QuizQuestion

# --- dynamic parts ------------------------------------------------------------------------------


def time_of_day(now: datetime) -> TimeOfDay:
    """Morning 05:00-11:59, afternoon 12:00-17:59, evening 18:00-21:59, night otherwise."""
    hour = now.hour
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 18:
        return "afternoon"
    if 18 <= hour < 22:
        return "evening"
    return "night"


def pick_conversation_starter(data: PromptData, language: str, rng: random.Random) -> str | None:
    starters = data.starters.get(language) or data.starters.get("en") or ()
    return rng.choice(starters) if starters else None


def draw_quiz_questions(
    data: PromptData, language: str, count: int, rng: random.Random
) -> list[QuizQuestion]:
    """``count`` distinct questions (fewer if the bank is smaller), in a random order."""
    bank = data.quiz.get(language) or data.quiz.get("en") or ()
    return rng.sample(list(bank), min(count, len(bank)))


# --- one entry per instruction type -------------------------------------------------------------


@dataclass(frozen=True)
class PartContext:
    """What a character part is written from."""

    choice: RoomChoice
    data: PromptData
    t: Texts
    tools: Collection[str]
    now: datetime
    rng: random.Random

    @property
    def language(self) -> str:
        return self.choice.language


@dataclass(frozen=True)
class TypeEntry:
    """How one instruction type is played.

    ``part``: the paragraphs of the character part after the persona. ``greeting``: the
    follow-up after the greeting's opening (a template with ``{count}``, ``{subject}``,
    ``{level}``). What the type needs from the prompt data is ``catalog.prompt_data.NEEDS``.
    """

    part: Callable[[PartContext], list[str]]
    greeting: Callable[[Texts], str]


def _smalltalk_part(ctx: PartContext) -> list[str]:
    t, now, language = ctx.t, ctx.now, ctx.language
    parts = [
        t.smalltalk,
        t.smalltalk_time.format(
            weekday=WEEKDAYS.get(language, WEEKDAYS["en"])[now.weekday()],
            time_of_day=TIMES_OF_DAY.get(language, TIMES_OF_DAY["en"])[time_of_day(now)],
            clock=f"{now.hour:02d}:{now.minute:02d}",
        ),
    ]
    starter = pick_conversation_starter(ctx.data, language, ctx.rng)
    if starter:
        parts.append(t.smalltalk_starter.format(starter=starter))
    return parts


def _quiz_part(ctx: PartContext) -> list[str]:
    instructions = ctx.choice.character.instructions
    assert isinstance(instructions, QuizShowInstructions)
    t = ctx.t
    questions = draw_quiz_questions(ctx.data, ctx.language, instructions.questions, ctx.rng)
    listed = "\n".join(
        t.quiz_question.format(number=i, question=q.question, answer=q.answer.rstrip("."))
        for i, q in enumerate(questions, start=1)
    )
    return [
        t.quiz.format(
            count=number_words(len(questions), ctx.language),
            record=t.quiz_record if "record_answer" in ctx.tools else "",
            questions=listed,
        )
    ]


def _constant_part(ctx: PartContext) -> list[str]:
    instructions = ctx.choice.character.instructions
    assert isinstance(instructions, ConstantInstructions)
    return [instructions.text_for(ctx.language).strip()]


def _tutor_part(ctx: PartContext) -> list[str]:
    t, choice, data, language = ctx.t, ctx.choice, ctx.data, ctx.language
    character = choice.character
    subject = choice.subject or (character.subjects[0] if character.subjects else "")
    plan = data.tutor_plan(subject, choice.level)
    level = choice.level or (plan.level if plan else "")
    parts = [
        t.tutor.format(
            subject=data.subject_name(subject, language),
            level=level_name(level, language),
            record=t.tutor_record if "record_answer" in ctx.tools else "",
            progress=t.tutor_progress if "learner_progress" in ctx.tools else "",
            lookup=t.tutor_lookup if "look_up_definition" in ctx.tools else "",
        )
    ]
    if plan is None:
        parts.append(t.tutor_no_plan)
    else:
        parts.append(
            t.tutor_plan.format(
                goals=plan.plan.goals.strip(),
                exercises="\n".join(f"- {e}" for e in plan.plan.exercises),
                adapt=plan.plan.adapt.strip(),
            )
        )
    return parts


BY_TYPE: Mapping[InstructionType, TypeEntry] = {
    "smalltalk": TypeEntry(_smalltalk_part, lambda t: t.greet_smalltalk),
    "quiz_show": TypeEntry(_quiz_part, lambda t: t.greet_quiz_show),
    "life_advice": TypeEntry(lambda ctx: [ctx.t.life_advice], lambda t: t.greet_life_advice),
    "news": TypeEntry(lambda ctx: [ctx.t.news], lambda t: t.greet_news),
    "explanation": TypeEntry(lambda ctx: [ctx.t.explanation], lambda t: t.greet_explanation),
    "constant": TypeEntry(_constant_part, lambda t: t.greet_constant),
    "tutor": TypeEntry(_tutor_part, lambda t: t.greet_tutor),
    # Moshi takes no text: its persona is in its weights and it greets by itself.
    "moshi": TypeEntry(lambda ctx: [], lambda t: ""),
}


# --- the prompt and the greeting ----------------------------------------------------------------


def _character_part(ctx: PartContext) -> str:
    instructions = ctx.choice.character.instructions
    parts: list[str] = [ctx.t.role_title]
    persona = instructions.persona_for(ctx.language)
    if persona:
        parts.append(persona.strip())
    parts.extend(BY_TYPE[instructions.type].part(ctx))
    return "\n".join(parts)


def build_system_prompt(
    choice: RoomChoice,
    data: PromptData,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
    tools: Collection[str] | None = None,
    max_silent_turns: int,
) -> str:
    """The system prompt (the agent's instructions) for a room.

    ``now``: the local time for small talk (default: the machine's clock). ``rng``: draws the
    quiz questions and the conversation starter (default: unseeded). ``tools``: the tools the
    session actually gives the model (default: the character's ``tools``); the prompt mentions
    only these. ``max_silent_turns``: silences in a row after which the model says goodbye (the
    setting the conversation code applies).
    """
    now = datetime.now().astimezone() if now is None else now
    rng = random.Random() if rng is None else rng
    tools = choice.character.tools if tools is None else tools
    t = texts_for(choice.language)
    goodbye = GOODBYE.get(choice.language, GOODBYE["en"])
    has_end_call = "end_call" in tools

    sections = [
        t.intro,
        t.style,
        t.emotion,
        t.transcription,
        t.language,
        t.identity.format(name=choice.character.spoken_name),
        t.silence.format(
            silence=SILENCE_MESSAGE,
            max_silent=number_words(max_silent_turns, choice.language),
            how=t.silence_goodbye.format(goodbye=goodbye)
            + (t.silence_end_call if has_end_call else ""),
        ),
        t.end.format(goodbye=goodbye, how=t.end_call if has_end_call else t.end_no_tool),
    ]
    if "current_time" in tools:
        sections.append(t.current_time)
    sections.append(_character_part(PartContext(choice, data, t, tools, now, rng)))
    return "\n\n".join(sections)


def greeting_instruction(choice: RoomChoice, data: PromptData | None = None) -> str:
    """The instruction for the agent's first, LLM-generated turn, in the room's language.

    Use it as the instructions of the session's first reply; the system prompt still applies.
    ``data`` only gives the tutor's subject its display name; without it the id is used.
    """
    language = choice.language if choice.language in TEXTS else "en"
    t = texts_for(language)
    character = choice.character
    instructions = character.instructions
    subject = choice.subject or ""
    if data is not None and subject:
        subject = data.subject_name(subject, language)
    count = instructions.questions if isinstance(instructions, QuizShowInstructions) else 0
    follow = (
        BY_TYPE[instructions.type]
        .greeting(t)
        .format(
            count=number_words(count, language),
            subject=subject,
            level=level_name(choice.level or "", language),
        )
    )
    return t.greeting.format(name=character.spoken_name) + follow
