"""The system prompt and the greeting for a room: fixed sections about speaking, plus the
character's own part, built from one table entry per instruction type.

Pure: ``build_system_prompt`` takes the clock and the random generator as arguments, and
``load_prompt_data`` reads the data files (``agent/conversation/data``) once at start-up. The
wording lives in ``texts.py``; this module picks it and fills it in.

Contract with the conversation code:

* a user message that is exactly ``SILENCE_MESSAGE`` means the user stayed silent; the prompt
  asks for a gentle nudge, and for a goodbye after ``max_silent_turns`` in a row (a setting);
* to end the conversation the model says a short goodbye ending with ``GOODBYE[language]`` and
  calls the ``end_call`` tool (when the character has it), so both tool-based and text-based
  goodbye detection work.

Adding an instruction type: one class in ``catalog/characters.py``, its wording in ``texts.py``
and one entry in ``BY_TYPE`` below (a unit test checks every type has one).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
from catalog.characters import (
    Character,
    CharacterSet,
    ConstantInstructions,
    InstructionType,
    Language,
    QuizShowInstructions,
)
from catalog.dispatch import RoomChoice
from catalog.validation import validation_problems

DATA_DIR = Path(__file__).resolve().parent / "data"
QUIZ_FILE = "quiz_questions.yaml"
TUTOR_FILE = "tutor_plans.yaml"
STARTERS_FILE = "conversation_starters.yaml"


_M = TypeVar("_M", bound=BaseModel)


class PromptDataError(ValueError):
    """A prompt data file is missing or malformed, or does not cover the characters."""


# --- data files ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuizQuestion(_Strict):
    q: str = Field(min_length=1)
    a: str = Field(min_length=1)

    @property
    def question(self) -> str:
        return self.q

    @property
    def answer(self) -> str:
        return self.a


class LevelPlan(_Strict):
    goals: str = Field(min_length=1)
    exercises: tuple[str, ...] = Field(min_length=1)
    adapt: str = Field(min_length=1)


class SubjectPlans(_Strict):
    name: dict[Language, str] = Field(default_factory=dict)
    levels: dict[str, LevelPlan] = Field(min_length=1)

    def name_for(self, language: str, fallback: str) -> str:
        return self.name.get(language) or self.name.get("en") or fallback  # type: ignore[call-overload]


class _TutorFile(_Strict):
    subjects: dict[str, SubjectPlans] = Field(min_length=1)


class _QuizFile(_Strict):
    en: tuple[QuizQuestion, ...] = ()
    fr: tuple[QuizQuestion, ...] = ()


class _StartersFile(_Strict):
    en: tuple[str, ...] = ()
    fr: tuple[str, ...] = ()


@dataclass(frozen=True)
class TutorPlan:
    subject: str
    level: str
    plan: LevelPlan


@dataclass(frozen=True)
class PromptData:
    """The question bank, conversation starters and tutor plans, loaded once."""

    quiz: Mapping[str, tuple[QuizQuestion, ...]]
    starters: Mapping[str, tuple[str, ...]]
    tutor_subjects: Mapping[str, SubjectPlans]

    def tutor_plan(self, subject: str, level: str | None) -> TutorPlan | None:
        """The plan for ``subject`` at ``level`` (``None``: the subject's first level)."""
        plans = self.tutor_subjects.get(subject)
        if plans is None:
            return None
        if level is None:
            level = next(iter(plans.levels))
        plan = plans.levels.get(level)
        return None if plan is None else TutorPlan(subject=subject, level=level, plan=plan)

    def subject_name(self, subject: str, language: str) -> str:
        plans = self.tutor_subjects.get(subject)
        return subject if plans is None else plans.name_for(language, subject)

    def problems(self, characters: CharacterSet) -> list[str]:
        """What the characters need that the data lacks (empty when everything is covered)."""
        return [
            problem
            for character in characters.characters
            for problem in BY_TYPE[character.instructions.type].needs(character, self)
        ]

    def check(self, characters: CharacterSet) -> None:
        """Raise ``PromptDataError`` listing every gap; call once at start-up."""
        problems = self.problems(characters)
        if problems:
            raise PromptDataError(
                "prompt data does not cover the characters:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptDataError(f"cannot read {str(path)!r} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise PromptDataError(f"{str(path)!r} is not valid YAML: {exc}") from None


def _validate(model: type[_M], data: Any, path: Path) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "\n".join(f"  - {p}" for p in validation_problems(exc))
        raise PromptDataError(f"{str(path)!r} is invalid:\n{details}") from None


def load_prompt_data(data_dir: Path = DATA_DIR) -> PromptData:
    """Read the question bank, conversation starters and tutor plans from ``data_dir``."""
    quiz_path, starters_path, tutor_path = (
        data_dir / QUIZ_FILE,
        data_dir / STARTERS_FILE,
        data_dir / TUTOR_FILE,
    )
    quiz = _validate(_QuizFile, _read_yaml(quiz_path), quiz_path)
    starters = _validate(_StartersFile, _read_yaml(starters_path), starters_path)
    tutor = _validate(_TutorFile, _read_yaml(tutor_path), tutor_path)
    return PromptData(
        quiz={"en": quiz.en, "fr": quiz.fr},
        starters={"en": starters.en, "fr": starters.fr},
        tutor_subjects=dict(tutor.subjects),
    )


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
    ``{level}``). ``needs``: what the type needs from the prompt data that is missing.
    """

    part: Callable[[PartContext], list[str]]
    greeting: Callable[[Texts], str]
    needs: Callable[[Character, PromptData], list[str]]


def _needs_nothing(character: Character, data: PromptData) -> list[str]:
    return []


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


def _smalltalk_needs(character: Character, data: PromptData) -> list[str]:
    return [
        f"{character.id}: no conversation starters in {language!r} in {STARTERS_FILE}"
        for language in character.languages
        if not data.starters.get(language)
    ]


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


def _quiz_needs(character: Character, data: PromptData) -> list[str]:
    instructions = character.instructions
    assert isinstance(instructions, QuizShowInstructions)
    problems = []
    for language in character.languages:
        have = len(data.quiz.get(language, ()))
        if have < instructions.questions:
            problems.append(
                f"{character.id}: {instructions.questions} quiz questions needed in "
                f"{language!r}, {QUIZ_FILE} has {have}"
            )
    return problems


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


def _tutor_needs(character: Character, data: PromptData) -> list[str]:
    problems = []
    for subject in character.subjects:
        for level in character.levels or (None,):
            if data.tutor_plan(subject, level) is None:
                problems.append(
                    f"{character.id}: no tutor plan for subject {subject!r}"
                    + (f" at level {level!r}" if level else "")
                    + f" in {TUTOR_FILE}"
                )
    return problems


BY_TYPE: Mapping[InstructionType, TypeEntry] = {
    "smalltalk": TypeEntry(_smalltalk_part, lambda t: t.greet_smalltalk, _smalltalk_needs),
    "quiz_show": TypeEntry(_quiz_part, lambda t: t.greet_quiz_show, _quiz_needs),
    "life_advice": TypeEntry(
        lambda ctx: [ctx.t.life_advice], lambda t: t.greet_life_advice, _needs_nothing
    ),
    "news": TypeEntry(lambda ctx: [ctx.t.news], lambda t: t.greet_news, _needs_nothing),
    "explanation": TypeEntry(
        lambda ctx: [ctx.t.explanation], lambda t: t.greet_explanation, _needs_nothing
    ),
    "constant": TypeEntry(_constant_part, lambda t: t.greet_constant, _needs_nothing),
    "tutor": TypeEntry(_tutor_part, lambda t: t.greet_tutor, _tutor_needs),
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
