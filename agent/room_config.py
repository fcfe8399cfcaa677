"""What a room asked for: the dispatch metadata resolved against the characters.

The token service writes the dispatch metadata as JSON::

    {"character": "tutor", "voice": "v", "language": "fr", "subject": "maths", "level": "advanced"}

Every field is optional. A bad value never fails the job: it is logged (logger ``kyutai.agent``)
with the valid choices, and the default for that field is used instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from agent.characters import Character, CharacterSet

logger = logging.getLogger("kyutai.agent")

FIELDS = ("character", "voice", "language", "subject", "level")
_MAX_LOGGED = 80  # metadata comes from outside: never log a huge value in full


@dataclass(frozen=True)
class RoomChoice:
    """The character, voice, language and (for a tutor) subject and level a room plays."""

    character: Character
    voice: str
    language: str
    subject: str | None = None
    level: str | None = None

    @property
    def character_id(self) -> str:
        return self.character.id


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_LOGGED else text[: _MAX_LOGGED - 3] + "..."


def _choices(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values) if values else "(none)"


def _decode(metadata: str | bytes | None) -> dict[str, Any]:
    if metadata is None or not metadata.strip():
        logger.info("no dispatch metadata; using the default character")
        return {}
    try:
        data = json.loads(metadata)
    except (ValueError, UnicodeDecodeError) as exc:
        logger.warning(
            "dispatch metadata is not valid JSON (%s): %s; using the default character",
            exc,
            _shown(metadata),
        )
        return {}
    if not isinstance(data, dict):
        logger.warning(
            "dispatch metadata must be a JSON object with keys %s, got %s; "
            "using the default character",
            _choices(FIELDS),
            _shown(data),
        )
        return {}
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        logger.warning(
            "dispatch metadata: ignoring unknown keys %s (known keys: %s)",
            _shown(unknown),
            _choices(FIELDS),
        )
    return data


def _pick(
    data: dict[str, Any], field: str, valid: tuple[str, ...], default: str | None, context: str
) -> str | None:
    """``data[field]`` if it is one of ``valid``, else ``default`` (logged when a value was bad)."""
    value = data.get(field)
    if value is None:
        return default
    if isinstance(value, str) and value in valid:
        return value
    logger.warning(
        "dispatch metadata: unknown %s %s%s; valid: %s; using %r",
        field,
        _shown(value),
        context,
        _choices(valid),
        default,
    )
    return default


def parse_room_metadata(metadata: str | bytes | None, characters: CharacterSet) -> RoomChoice:
    """Resolve a job's dispatch metadata into a ``RoomChoice``. Never raises."""
    data = _decode(metadata)

    character_id = _pick(data, "character", characters.ids, characters.default, "")
    character = characters.get(character_id or characters.default) or characters.default_character
    for_character = f" for character {character.id!r}"

    language = _pick(data, "language", character.languages, character.language, for_character)
    assert language is not None

    # Any voice of the file may be chosen (as the token service allows); none → the character's.
    voice = _pick(data, "voice", characters.voices(), character.voice_for(language), "")
    assert voice is not None

    if not character.takes_subject:
        for field in ("subject", "level"):
            if data.get(field) is not None:
                logger.warning(
                    "dispatch metadata: character %r takes no %s; ignoring %s",
                    character.id,
                    field,
                    _shown(data[field]),
                )
        return RoomChoice(character=character, voice=voice, language=language)

    default_subject = character.subjects[0]
    if data.get("subject") is None:
        logger.warning(
            "dispatch metadata: character %r needs a subject (valid: %s); using %r",
            character.id,
            _choices(character.subjects),
            default_subject,
        )
    subject = _pick(data, "subject", character.subjects, default_subject, for_character)
    default_level = character.levels[0] if character.levels else None
    level = _pick(data, "level", character.levels, default_level, for_character)
    return RoomChoice(
        character=character, voice=voice, language=language, subject=subject, level=level
    )
