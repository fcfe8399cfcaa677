"""``characters.yaml``: the one schema, read by the agent (to play a character) and by the token
service (to offer characters and check token requests).

Both services load the file through ``catalog.load.load_catalog`` (``load_characters`` plus the
prompt data check of ``catalog/prompt_data.py``), so ``python -m tokens check`` and the worker's
start-up accept and refuse the same files. Pure apart from ``load_characters``.

File shape::

    default: watercooler
    characters:
      - id: tutor                     # [A-Za-z0-9_-]{1,64}
        name: Tutor
        description: ...              # shown by the token service
        language: en                  # default language: en | fr
        languages: [en, fr]           # optional: languages it speaks (default: [language])
        voice: vctk/p225_023.wav.1e68beda@240.safetensors
        voice_by_language: {fr: ...}  # optional default voice per language it speaks
        takes_subject: true           # a tutor, and only a tutor, takes a subject
        subjects: [maths, physics]
        levels: [beginner, advanced]  # optional; the first is the default level
        tools: [current_time, end_call, record_answer]   # optional, default: current_time, end_call
        mode: cascade                 # optional: cascade (STT → LLM → TTS, the default) | duplex
        instructions:                 # the agent's; never shown by the token service
          type: smalltalk | quiz_show | life_advice | news | explanation | constant | tutor | moshi
          persona: "..."              # optional, who the character is; a string or {en:, fr:}
          spoken_name: Dev            # optional, the name it speaks under (default: name)
          text: "..."                 # constant only (required): the whole character description
          questions: 5                # quiz_show only: questions per game

A ``mode: duplex`` character is Kyutai's Moshi, which listens and speaks at once: its persona
is in its weights (instructions ``{type: moshi}``, the default for that mode), it speaks English,
its ``voice`` is the Kyutai TTS voice that reads out tool results, and its tools are raised by
``intents`` (it has no LLM to call them)::

        intents:
          - says: [what time is it, the time]   # phrases, matched case-insensitively
            speaker: user                       # user (their transcript) | agent (Moshi's words)
            tool: current_time                  # one of the character's tools
            argument: term                      # optional: the tool argument given the words
                                                # after the phrase
            spoken: true                        # optional: the result is read out (else shown)

Unknown keys of a character are ignored; unknown keys under ``instructions`` are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from catalog.validation import CatalogError, Location, validation_problems

Language = Literal["en", "fr"]
# Character ids; the token service's room names and identities use the same charset.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# The tools a character may list. The agent's tool registry (agent/conversation/tools.py) is
# checked against these names when it is imported; the session decides which ones it registers.
KNOWN_TOOLS: frozenset[str] = frozenset(
    {"current_time", "end_call", "record_answer", "learner_progress", "look_up_definition"}
)
DEFAULT_TOOLS: tuple[str, ...] = ("current_time", "end_call")
# Tools a duplex character may list: intents fill at most one argument from the words heard.
DUPLEX_TOOLS: frozenset[str] = frozenset({"current_time", "end_call", "look_up_definition"})

Mode = Literal["cascade", "duplex"]

# The repository's file: this package is the repository's ``catalog/`` directory.
DEFAULT_CHARACTERS_FILE = Path(__file__).resolve().parent.parent / "characters.yaml"

# Text that is either the same for every language or given per language.
LocalText = str | dict[Language, str]


class CharactersError(CatalogError):
    """The characters file is missing or malformed; the message lists every problem."""


def _text_for(text: LocalText | None, language: str) -> str | None:
    if text is None or isinstance(text, str):
        return text
    return text.get(language) or text.get("en") or next(iter(text.values()), None)  # type: ignore[call-overload]


# --- instructions: one class per type -----------------------------------------------------------


class _InstructionsBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    persona: LocalText | None = None
    # The name the character introduces itself with, when it differs from the catalogue's name.
    spoken_name: str | None = Field(None, min_length=1)

    def persona_for(self, language: str) -> str | None:
        return _text_for(self.persona, language)


class SmalltalkInstructions(_InstructionsBase):
    type: Literal["smalltalk"]


class QuizShowInstructions(_InstructionsBase):
    type: Literal["quiz_show"]
    questions: int = Field(5, ge=1, le=20)


class LifeAdviceInstructions(_InstructionsBase):
    type: Literal["life_advice"]


class NewsInstructions(_InstructionsBase):
    type: Literal["news"]


class ExplanationInstructions(_InstructionsBase):
    type: Literal["explanation"]


class ConstantInstructions(_InstructionsBase):
    type: Literal["constant"]
    text: LocalText

    @model_validator(mode="after")
    def _not_blank(self) -> ConstantInstructions:
        values = [self.text] if isinstance(self.text, str) else list(self.text.values())
        if not values or not all(v.strip() for v in values):
            raise ValueError("constant instructions need a non-empty text")
        return self

    def text_for(self, language: str) -> str:
        return _text_for(self.text, language) or ""


class TutorInstructions(_InstructionsBase):
    type: Literal["tutor"]


class MoshiInstructions(_InstructionsBase):
    """A duplex character: Moshi has no text input, its persona is in its weights."""

    type: Literal["moshi"]


Instructions = Annotated[
    SmalltalkInstructions
    | QuizShowInstructions
    | LifeAdviceInstructions
    | NewsInstructions
    | ExplanationInstructions
    | ConstantInstructions
    | TutorInstructions
    | MoshiInstructions,
    Field(discriminator="type"),
]
InstructionType = Literal[
    "smalltalk", "quiz_show", "life_advice", "news", "explanation", "constant", "tutor", "moshi"
]
INSTRUCTION_TYPES: tuple[InstructionType, ...] = get_args(InstructionType)


# --- characters ---------------------------------------------------------------------------------


class Temperament(BaseModel):
    """How the character's face moves (agent/face/affect.py): where it rests on the
    valence–arousal plane, and how far words move it (a quiz host is livelier than a nurse)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    valence: float = Field(0.0, ge=-0.5, le=0.5)
    arousal: float = Field(0.0, ge=-0.5, le=0.5)
    gain: float = Field(1.0, ge=0.25, le=2.0)


class IntentRule(BaseModel):
    """Words heard in a duplex conversation that raise a tool call (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    says: tuple[str, ...] = Field(min_length=1)
    speaker: Literal["user", "agent"] = "user"
    tool: str = Field(min_length=1)
    argument: str | None = Field(None, min_length=1)
    spoken: bool = False

    @field_validator("says", mode="before")
    @classmethod
    def _phrases(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("says")
    @classmethod
    def _not_blank(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        if not all(p.strip() for p in phrases):
            raise ValueError("an intent phrase is blank")
        return tuple(" ".join(p.lower().split()) for p in phrases)


class Character(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    description: str = ""
    language: Language
    languages: tuple[Language, ...] = ()
    voice: str = Field(min_length=1)
    voice_by_language: dict[Language, str] = Field(default_factory=dict)
    takes_subject: bool = False
    subjects: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    mode: Mode = "cascade"
    instructions: Instructions
    tools: tuple[str, ...] = DEFAULT_TOOLS
    intents: tuple[IntentRule, ...] = ()
    temperament: Temperament = Temperament()

    @model_validator(mode="before")
    @classmethod
    def _duplex_defaults(cls, data: Any) -> Any:
        # Moshi takes no instructions: a duplex character may leave them out.
        if isinstance(data, Mapping) and data.get("mode") == "duplex":
            if "instructions" not in data:
                return {**data, "instructions": {"type": "moshi"}}
        return data

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(tools) - KNOWN_TOOLS)
        if unknown:
            raise ValueError(f"unknown tools {unknown}; known tools: {sorted(KNOWN_TOOLS)}")
        return tuple(dict.fromkeys(tools))

    @model_validator(mode="after")
    def _consistent(self) -> Character:
        problems: list[str] = []
        if not self.languages:
            object.__setattr__(self, "languages", (self.language,))
        elif self.language not in self.languages:
            problems.append(f"language {self.language!r} is not in {list(self.languages)}")
        extra_voices = sorted(set(self.voice_by_language) - set(self.languages))
        if extra_voices:
            problems.append(f"voice_by_language names languages it does not speak: {extra_voices}")
        if self.takes_subject and not self.subjects:
            problems.append("takes_subject is true but no subjects are listed")
        if not self.takes_subject and (self.subjects or self.levels):
            problems.append("subjects/levels are listed but takes_subject is false")
        if (self.instructions.type == "tutor") != self.takes_subject:
            problems.append("a tutor character must take a subject, and only a tutor may")
        problems.extend(self._mode_problems())
        for field, values in (("subjects", self.subjects), ("levels", self.levels)):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                problems.append(f"duplicate {field}: {duplicates}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _mode_problems(self) -> list[str]:
        if self.mode == "cascade":
            problems = []
            if self.instructions.type == "moshi":
                problems.append("moshi instructions are for a duplex character (mode: duplex)")
            if self.intents:
                problems.append("intents are for a duplex character: a cascade's LLM calls tools")
            return problems
        problems = []
        if self.instructions.type != "moshi":
            problems.append(
                "a duplex character takes no instructions (Moshi's persona is in its weights)"
            )
        if self.languages != ("en",):
            problems.append("a duplex character speaks English only (Moshi does)")
        not_duplex = sorted(set(self.tools) - DUPLEX_TOOLS)
        if not_duplex:
            problems.append(
                f"tools {not_duplex} need an LLM; a duplex character may list "
                f"{sorted(DUPLEX_TOOLS)}"
            )
        for rule in self.intents:
            if rule.tool not in (*DEFAULT_TOOLS, *self.tools):
                problems.append(f"intent tool {rule.tool!r} is not in the character's tools")
        return problems

    @property
    def duplex(self) -> bool:
        return self.mode == "duplex"

    @property
    def spoken_name(self) -> str:
        """The name the character uses for itself in conversation."""
        return self.instructions.spoken_name or self.name

    def voice_for(self, language: str) -> str:
        """The character's default voice in ``language``."""
        return self.voice_by_language.get(language, self.voice)  # type: ignore[call-overload]

    def voices(self) -> tuple[str, ...]:
        return (self.voice, *self.voice_by_language.values())


class CharacterSet(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    default: str
    characters: tuple[Character, ...]

    @model_validator(mode="after")
    def _consistent(self) -> CharacterSet:
        if not self.characters:
            raise ValueError("no characters are listed")
        ids = [c.id for c in self.characters]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate character ids: {', '.join(duplicates)}")
        if self.default not in ids:
            raise ValueError(f"default {self.default!r} is not a character id")
        return self

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.characters)

    @property
    def default_character(self) -> Character:
        character = self.get(self.default)
        assert character is not None  # checked by the validator
        return character

    def get(self, character_id: str) -> Character | None:
        return next((c for c in self.characters if c.id == character_id), None)

    def voices(self) -> tuple[str, ...]:
        """Every voice in the file, without duplicates, in file order (any may be chosen)."""
        return tuple(dict.fromkeys(v for c in self.characters for v in c.voices()))


# --- loading, with readable error places --------------------------------------------------------

_TAGS: frozenset[str] = frozenset(INSTRUCTION_TYPES)


def _without_tags(loc: Location) -> Location:
    """Drop the union's tag: ``instructions.constant.text`` → ``instructions.text``."""
    return tuple(
        part
        for i, part in enumerate(loc)
        if not (i > 0 and loc[i - 1] == "instructions" and part in _TAGS)
    )


def _location(data: Any, loc: Location) -> str:
    """``characters.2.instructions`` → ``characters[2] (tutor).instructions``."""
    parts: list[str] = []
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
                if isinstance(node, Mapping) and isinstance(node.get("id"), str):
                    label += f" ({node['id']})"
            else:
                node = None
            parts.append(label)
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "<root>"


def parse_characters(data: Any, *, source: str = "characters file") -> CharacterSet:
    """Validate already-parsed YAML; raise ``CharactersError`` listing every problem."""
    try:
        return CharacterSet.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, lambda loc: _location(data, _without_tags(loc)))
        raise CharactersError(
            f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in problems)
        ) from None


def load_characters(path: Path | None = None) -> CharacterSet:
    """Read and validate the characters file (by default the repository's ``characters.yaml``)."""
    path = DEFAULT_CHARACTERS_FILE if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CharactersError(
            f"cannot read characters file {str(path)!r} ({exc.strerror}); "
            "set KYUTAI_CHARACTERS_FILE"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CharactersError(f"characters file {str(path)!r} is not valid YAML: {exc}") from None
    return parse_characters(data, source=f"characters file {str(path)!r}")
