"""The prompt data: the question bank, the tutor plans and the conversation starters.

Catalogue content like ``characters.yaml``: the YAML files in ``catalog/data`` ship with this
package, are read by ``load_prompt_data`` and must cover what the characters need. What each
instruction type needs from the data is ``NEEDS`` below, one entry per type (a unit test checks
every type has one). ``catalog.load.load_catalog`` reads the characters file and this data and
checks one against the other: the worker's start-up and ``python -m tokens check`` both call it,
so they accept and refuse the same files. The agent's prompt (``agent/conversation/prompt.py``)
is written from the data loaded here.

Adding an instruction type: one class in ``catalog/characters.py``, one entry in ``NEEDS`` here,
and its prompt part in ``agent/conversation/prompt.py`` (``BY_TYPE``) and ``texts.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalog.characters import (
    Character,
    CharacterSet,
    InstructionType,
    Language,
    QuizShowInstructions,
)
from catalog.validation import CatalogError, validation_problems

# The package's own files: this package is the repository's ``catalog/`` directory.
DATA_DIR = Path(__file__).resolve().parent / "data"
QUIZ_FILE = "quiz_questions.yaml"
TUTOR_FILE = "tutor_plans.yaml"
STARTERS_FILE = "conversation_starters.yaml"


_M = TypeVar("_M", bound=BaseModel)


class PromptDataError(CatalogError):
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
            for problem in NEEDS[character.instructions.type](character, self)
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


def load_prompt_data(data_dir: Path | None = None) -> PromptData:
    """Read the question bank, conversation starters and tutor plans (default: ``DATA_DIR``)."""
    data_dir = DATA_DIR if data_dir is None else data_dir
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


# --- what each instruction type needs from the data ---------------------------------------------

Needs = Callable[[Character, PromptData], list[str]]


def _needs_nothing(character: Character, data: PromptData) -> list[str]:
    return []


def _smalltalk_needs(character: Character, data: PromptData) -> list[str]:
    """A conversation starter in every language the character speaks."""
    return [
        f"{character.id}: no conversation starters in {language!r} in {STARTERS_FILE}"
        for language in character.languages
        if not data.starters.get(language)
    ]


def _quiz_needs(character: Character, data: PromptData) -> list[str]:
    """A full game's worth of distinct questions in every language the character speaks."""
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


def _tutor_needs(character: Character, data: PromptData) -> list[str]:
    """A plan for every subject at every level the character offers (no levels: the first)."""
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


NEEDS: Mapping[InstructionType, Needs] = {
    "smalltalk": _smalltalk_needs,
    "quiz_show": _quiz_needs,
    "life_advice": _needs_nothing,
    "news": _needs_nothing,
    "explanation": _needs_nothing,
    "constant": _needs_nothing,
    "tutor": _tutor_needs,
    "moshi": _needs_nothing,
}
