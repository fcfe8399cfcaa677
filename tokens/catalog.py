"""The characters catalogue (``characters.yaml``) and the choice a token request makes from it.

Pure: ``parse_catalog`` takes already-parsed YAML, ``resolve_selection`` checks a request against
the catalogue; only ``load_catalog`` touches the file system. The agent reads the same file for
prompts, so unknown keys are ignored here (the agent may add fields we do not need).

File shape::

    default: watercooler
    characters:
      - id: tutor
        name: Tutor
        description: ...
        language: en              # default language: en | fr
        languages: [en, fr]       # optional: languages it speaks (default: [language])
        voice: vctk/p225_023.wav.1e68beda@240.safetensors
        voice_by_language: {fr: cml-tts/fr/...}   # optional default voice per language
        takes_subject: true
        subjects: [maths, physics]
        levels: [beginner, advanced]
        instructions: {type: tutor}   # for the agent; extra keys allowed
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Language = Literal["en", "fr"]
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class CatalogError(ValueError):
    """The characters file is missing or malformed."""


class SelectionError(ValueError):
    """A token request names something the catalogue does not offer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Instructions(BaseModel):
    """Only ``type`` is ours; the agent engineer owns and extends the rest."""

    model_config = ConfigDict(extra="allow")
    type: str


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
    instructions: Instructions | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Character:
        if not self.languages:
            object.__setattr__(self, "languages", (self.language,))
        elif self.language not in self.languages:
            raise ValueError(f"language {self.language!r} is not in languages {self.languages}")
        if self.takes_subject and not self.subjects:
            raise ValueError("takes_subject is true but no subjects are listed")
        if not self.takes_subject and (self.subjects or self.levels):
            raise ValueError("subjects/levels are listed but takes_subject is false")
        return self

    def voice_for(self, language: str) -> str:
        return self.voice_by_language.get(language, self.voice)  # type: ignore[call-overload]

    def voices(self) -> tuple[str, ...]:
        return (self.voice, *self.voice_by_language.values())


class Catalog(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    default: str
    characters: tuple[Character, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        ids = [c.id for c in self.characters]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate character ids: {', '.join(duplicates)}")
        if self.default not in ids:
            raise ValueError(f"default {self.default!r} is not a character id")
        return self

    def get(self, character_id: str) -> Character | None:
        return next((c for c in self.characters if c.id == character_id), None)

    def voices(self) -> frozenset[str]:
        """Every voice a request may pick: voices outside the catalogue are not offered."""
        return frozenset(v for c in self.characters for v in c.voices())


def parse_catalog(data: Any, *, source: str = "characters file") -> Catalog:
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise CatalogError(f"{source} is invalid: {details}") from None


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(
            f"cannot read characters file {str(path)!r} ({exc.strerror}); "
            "set KYUTAI_CHARACTERS_FILE"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"characters file {str(path)!r} is not valid YAML: {exc}") from None
    return parse_catalog(data, source=f"characters file {str(path)!r}")


@dataclass(frozen=True)
class Selection:
    """What the agent is dispatched with (serialised as the dispatch metadata)."""

    character: str
    voice: str
    language: str
    subject: str | None = None
    level: str | None = None

    def to_metadata(self) -> str:
        data = {
            "character": self.character,
            "voice": self.voice,
            "language": self.language,
            "subject": self.subject,
            "level": self.level,
        }
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _one_of(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(sorted(values))


def resolve_selection(
    catalog: Catalog,
    *,
    character: str | None = None,
    voice: str | None = None,
    language: str | None = None,
    subject: str | None = None,
    level: str | None = None,
) -> Selection:
    """Fill defaults from the catalogue and refuse anything it does not offer."""
    character_id = catalog.default if character is None else character
    chosen = catalog.get(character_id)
    if chosen is None:
        raise SelectionError(
            "character",
            f"unknown character {character_id!r}; choose one of: "
            f"{_one_of([c.id for c in catalog.characters])}",
        )

    lang = chosen.language if language is None else language
    if lang not in chosen.languages:
        raise SelectionError(
            "language",
            f"character {chosen.id!r} does not speak {lang!r}; choose one of: "
            f"{_one_of(chosen.languages)}",
        )

    if voice is None:
        voice = chosen.voice_for(lang)
    elif voice not in catalog.voices():
        # Do not echo a possibly long, attacker-chosen string back verbatim.
        raise SelectionError(
            "voice", "unknown voice; choose one of the voices in GET /v1/characters"
        )

    if not chosen.takes_subject:
        if subject is not None or level is not None:
            field = "subject" if subject is not None else "level"
            raise SelectionError(field, f"character {chosen.id!r} takes no subject or level")
        return Selection(character=chosen.id, voice=voice, language=lang)

    if subject is None:
        raise SelectionError(
            "subject",
            f"character {chosen.id!r} needs a subject; choose one of: {_one_of(chosen.subjects)}",
        )
    if subject not in chosen.subjects:
        raise SelectionError(
            "subject",
            f"unknown subject {subject!r} for {chosen.id!r}; choose one of: "
            f"{_one_of(chosen.subjects)}",
        )
    if level is None:
        level = chosen.levels[0] if chosen.levels else None
    elif level not in chosen.levels:
        raise SelectionError(
            "level",
            f"unknown level {level!r} for {chosen.id!r}; choose one of: "
            f"{_one_of(chosen.levels) or '(none)'}",
        )
    return Selection(character=chosen.id, voice=voice, language=lang, subject=subject, level=level)
