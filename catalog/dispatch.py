"""The dispatch metadata: what a room plays, written by the token service, read by the agent.

The token service checks a token request with ``resolve`` and writes the result into the room's
agent dispatch as JSON (``Selection.to_metadata``)::

    {"character": "tutor", "voice": "v", "language": "fr", "subject": "maths", "level": "advanced"}

The agent reads it back with ``Selection.from_metadata``, which applies the same ``resolve``.
There is one rule for filling in a default voice, language, subject and level, and for what is
not offered; only the reaction to a problem differs, chosen by the caller's ``on_problem``:

* ``strict`` (the token service) raises ``SelectionError``: the request is refused with the
  choices listed;
* ``lenient(logger)`` (the agent) logs a warning with the valid choices and goes on with the
  default for that field: a bad value never fails a job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from catalog.characters import Character, CharacterSet

FIELDS = ("character", "voice", "language", "subject", "level")
_MAX_LOGGED = 80  # metadata comes from outside: never log a huge value in full

ProblemKind = Literal["unknown", "missing", "not_taken", "not_json", "not_object", "extra_keys"]


class SelectionError(ValueError):
    """A request names something the catalogue does not offer (``field``: which part)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One thing a request asked for that the catalogue does not offer.

    ``field`` is one of ``FIELDS``, or ``"metadata"`` when the metadata as a whole is unusable.
    ``valid`` lists the choices, ``character`` is the character the value was checked against
    (for language, subject and level), ``fallback`` is what the lenient reading uses instead.
    """

    field: str
    kind: ProblemKind
    value: Any = None
    valid: tuple[str, ...] = ()
    character: str | None = None
    fallback: str | None = None
    detail: str = ""


OnProblem = Callable[[Problem], None]


@dataclass(frozen=True)
class SelectionRequest:
    """What a token request or a room's metadata asks for: every field optional, unchecked."""

    character: Any = None
    voice: Any = None
    language: Any = None
    subject: Any = None
    level: Any = None

    @classmethod
    def from_metadata(cls, metadata: str | bytes | None, on_problem: OnProblem) -> SelectionRequest:
        """Decode the dispatch JSON; no metadata at all asks for the defaults."""
        if metadata is None or not metadata.strip():
            return cls()
        try:
            data = json.loads(metadata)
        except (ValueError, UnicodeDecodeError) as exc:
            on_problem(Problem("metadata", "not_json", metadata, detail=str(exc)))
            return cls()
        if not isinstance(data, dict):
            on_problem(Problem("metadata", "not_object", data, valid=FIELDS))
            return cls()
        unknown = sorted(str(k) for k in data if k not in FIELDS)
        if unknown:
            on_problem(Problem("metadata", "extra_keys", unknown, valid=FIELDS))
        return cls(**{field: data.get(field) for field in FIELDS})


@dataclass(frozen=True)
class Selection:
    """A checked choice from the catalogue: the dispatch metadata."""

    character: str
    voice: str
    language: str
    subject: str | None = None
    level: str | None = None

    def to_metadata(self) -> str:
        data = {field: getattr(self, field) for field in FIELDS}
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_metadata(
        cls, metadata: str | bytes | None, characters: CharacterSet, on_problem: OnProblem
    ) -> Selection:
        """Read the dispatch metadata back and resolve it against ``characters``."""
        return resolve(characters, SelectionRequest.from_metadata(metadata, on_problem), on_problem)


@dataclass(frozen=True)
class RoomChoice:
    """A ``Selection`` with its character: what the agent plays in one room."""

    character: Character
    voice: str
    language: str
    subject: str | None = None
    level: str | None = None

    @property
    def character_id(self) -> str:
        return self.character.id

    @classmethod
    def of(cls, selection: Selection, characters: CharacterSet) -> RoomChoice:
        character = characters.get(selection.character)
        if character is None:
            raise KeyError(f"character {selection.character!r} is not in the catalogue")
        return cls(
            character=character,
            voice=selection.voice,
            language=selection.language,
            subject=selection.subject,
            level=selection.level,
        )


# --- the rule -----------------------------------------------------------------------------------


def _pick(
    value: Any,
    field: str,
    valid: tuple[str, ...],
    default: str | None,
    on_problem: OnProblem,
    character: str | None = None,
) -> str | None:
    """``value`` if it is one of ``valid``; ``default`` if it is absent or (once reported) bad."""
    if value is None:
        return default
    if isinstance(value, str) and value in valid:
        return value
    on_problem(Problem(field, "unknown", value, valid, character, default))
    return default


def resolve(
    characters: CharacterSet, request: SelectionRequest, on_problem: OnProblem
) -> Selection:
    """Fill the defaults from the catalogue; report anything it does not offer to ``on_problem``.

    Defaults: the catalogue's default character, the character's language, the character's voice
    for that language, its first subject (a subject is required: a missing one is reported) and
    its first level. Any voice of the catalogue may be chosen. A character that takes no subject
    is given none (one that is asked for is reported).
    """
    ids, default = characters.ids, characters.default
    character_id = _pick(request.character, "character", ids, default, on_problem)
    chosen = characters.get(character_id or default) or characters.default_character

    language = _pick(
        request.language, "language", chosen.languages, chosen.language, on_problem, chosen.id
    )
    assert language is not None

    # Any voice of the file may be chosen; none → the character's voice for the language.
    voices, own_voice = characters.voices(), chosen.voice_for(language)
    voice = _pick(request.voice, "voice", voices, own_voice, on_problem)
    assert voice is not None

    if not chosen.takes_subject:
        for field in ("subject", "level"):
            value = getattr(request, field)
            if value is not None:
                on_problem(Problem(field, "not_taken", value, character=chosen.id))
        return Selection(character=chosen.id, voice=voice, language=language)

    first_subject = chosen.subjects[0]
    if request.subject is None:
        on_problem(Problem("subject", "missing", None, chosen.subjects, chosen.id, first_subject))
    subject = _pick(
        request.subject, "subject", chosen.subjects, first_subject, on_problem, chosen.id
    )
    first_level = chosen.levels[0] if chosen.levels else None
    level = _pick(request.level, "level", chosen.levels, first_level, on_problem, chosen.id)
    return Selection(
        character=chosen.id, voice=voice, language=language, subject=subject, level=level
    )


# --- the two reactions to a problem -------------------------------------------------------------


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(sorted(values)) or "(none)"


def refusal(problem: Problem) -> str:
    """The token service's wording: what was refused and the choices, sorted."""
    p, choices = problem, _one_of(problem.valid)
    if p.field == "metadata":
        return {
            "not_json": f"dispatch metadata is not valid JSON ({p.detail})",
            "not_object": f"dispatch metadata must be a JSON object with keys {', '.join(FIELDS)}",
            "extra_keys": f"dispatch metadata has unknown keys {p.value}",
        }.get(p.kind, "dispatch metadata is invalid")
    if p.kind == "not_taken":
        return f"character {p.character!r} takes no subject or level"
    if p.kind == "missing":
        return f"character {p.character!r} needs a {p.field}; choose one of: {choices}"
    if p.field == "character":
        return f"unknown character {p.value!r}; choose one of: {choices}"
    if p.field == "voice":
        # Do not echo a possibly long, attacker-chosen string back verbatim.
        return "unknown voice; choose one of the voices in GET /v1/characters"
    if p.field == "language":
        return f"character {p.character!r} does not speak {p.value!r}; choose one of: {choices}"
    return f"unknown {p.field} {p.value!r} for {p.character!r}; choose one of: {choices}"


def strict(problem: Problem) -> NoReturn:
    """Refuse the request: raise ``SelectionError`` naming the field and the choices."""
    raise SelectionError(problem.field, refusal(problem))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_LOGGED else text[: _MAX_LOGGED - 3] + "..."


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "(none)"


def warning(problem: Problem) -> str:
    """The agent's wording: what was ignored, the choices in file order, and what is used."""
    p = problem
    if p.kind == "not_json":
        return (
            f"dispatch metadata is not valid JSON ({p.detail}): {_shown(p.value)}; "
            "using the default character"
        )
    if p.kind == "not_object":
        return (
            f"dispatch metadata must be a JSON object with keys {_listed(p.valid)}, got "
            f"{_shown(p.value)}; using the default character"
        )
    if p.kind == "extra_keys":
        return (
            f"dispatch metadata: ignoring unknown keys {_shown(p.value)} "
            f"(known keys: {_listed(p.valid)})"
        )
    if p.kind == "not_taken":
        return (
            f"dispatch metadata: character {p.character!r} takes no {p.field}; "
            f"ignoring {_shown(p.value)}"
        )
    if p.kind == "missing":
        return (
            f"dispatch metadata: character {p.character!r} needs a {p.field} "
            f"(valid: {_listed(p.valid)}); using {p.fallback!r}"
        )
    context = f" for character {p.character!r}" if p.character is not None else ""
    return (
        f"dispatch metadata: unknown {p.field} {_shown(p.value)}{context}; "
        f"valid: {_listed(p.valid)}; using {p.fallback!r}"
    )


def wants_duplex(metadata: str | bytes | None, characters: CharacterSet) -> bool:
    """Whether a dispatch's metadata picks a duplex (Moshi) character: what the character the
    job will play (the default, for bad metadata) needs. Quiet: the job logs the metadata's
    problems when it reads it."""
    selection = Selection.from_metadata(metadata, characters, lambda _problem: None)
    character = characters.get(selection.character)
    return character is not None and character.duplex


def lenient(logger: logging.Logger) -> OnProblem:
    """Go on with the default: log a warning on ``logger`` and let ``resolve`` use the fallback."""

    def on_problem(problem: Problem) -> None:
        logger.warning("%s", warning(problem))

    return on_problem
