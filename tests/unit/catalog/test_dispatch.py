"""The dispatch rule read strictly (the token service): defaults, refusals, the metadata."""

import json
from typing import Any

import pytest

from catalog.characters import CharacterSet, parse_characters
from catalog.dispatch import (
    FIELDS,
    Problem,
    RoomChoice,
    Selection,
    SelectionError,
    SelectionRequest,
    resolve,
    strict,
)
from tests.samples import TUTOR_FR_VOICE, sample_catalog_data


@pytest.fixture
def catalog() -> CharacterSet:
    return parse_characters(sample_catalog_data())


def resolve_strictly(catalog: CharacterSet, **asked: Any) -> Selection:
    return resolve(catalog, SelectionRequest(**asked), strict)


def test_defaults_come_from_the_catalogue(catalog: CharacterSet) -> None:
    assert resolve_strictly(catalog) == Selection(
        character="watercooler",
        voice="unmute-prod-website/p329_022.wav.1e68beda@240.safetensors",
        language="en",
    )


def test_tutor_takes_subject_level_and_a_voice_per_language(catalog: CharacterSet) -> None:
    selection = resolve_strictly(catalog, character="tutor", subject="maths", language="fr")
    assert selection == Selection(
        character="tutor", voice=TUTOR_FR_VOICE, language="fr", subject="maths", level="beginner"
    )
    chosen = resolve_strictly(catalog, character="tutor", subject="history", level="advanced")
    assert (chosen.language, chosen.level) == ("en", "advanced")


def test_any_catalogue_voice_may_be_chosen(catalog: CharacterSet) -> None:
    selection = resolve_strictly(catalog, character="watercooler", voice=TUTOR_FR_VOICE)
    assert selection.voice == TUTOR_FR_VOICE


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"character": "nobody"}, "character", "unknown character 'nobody'"),
        ({"character": "charles", "language": "en"}, "language", "does not speak 'en'"),
        ({"language": "de"}, "language", "does not speak 'de'"),
        ({"voice": "vctk/not-in-catalogue.safetensors"}, "voice", "unknown voice"),
        ({"subject": "maths"}, "subject", "takes no subject"),
        ({"level": "beginner"}, "level", "takes no subject or level"),
        ({"character": "tutor"}, "subject", "needs a subject"),
        ({"character": "tutor", "subject": "art"}, "subject", "unknown subject 'art'"),
        (
            {"character": "tutor", "subject": "maths", "level": "guru"},
            "level",
            "unknown level 'guru'",
        ),
    ],
)
def test_refuses_what_the_catalogue_does_not_offer(
    catalog: CharacterSet, kwargs: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(SelectionError) as info:
        resolve_strictly(catalog, **kwargs)
    assert info.value.field == field
    assert fragment in info.value.message


def test_error_lists_the_choices(catalog: CharacterSet) -> None:
    with pytest.raises(SelectionError, match="choose one of: charles, tutor, watercooler"):
        resolve_strictly(catalog, character="x")


def test_an_unknown_voice_is_not_echoed(catalog: CharacterSet) -> None:
    with pytest.raises(SelectionError) as info:
        resolve_strictly(catalog, voice="<script>" * 100)
    assert "<script>" not in info.value.message


def test_metadata_is_compact_json() -> None:
    selection = Selection(character="tutor", voice="v", language="fr", subject="maths", level="b")
    assert json.loads(selection.to_metadata()) == {
        "character": "tutor",
        "voice": "v",
        "language": "fr",
        "subject": "maths",
        "level": "b",
    }
    assert " " not in selection.to_metadata()


def test_what_is_written_reads_back_the_same(catalog: CharacterSet) -> None:
    for asked in (
        {},
        {"character": "charles"},
        {"character": "tutor", "language": "fr", "subject": "history", "level": "advanced"},
        {"character": "watercooler", "voice": TUTOR_FR_VOICE},
    ):
        selection = resolve_strictly(catalog, **asked)
        assert Selection.from_metadata(selection.to_metadata(), catalog, strict) == selection


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ("{nope", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"character": "tutor", "mood": "happy"}', "unknown keys ['mood']"),
    ],
)
def test_strict_reading_refuses_malformed_metadata(
    catalog: CharacterSet, metadata: str, fragment: str
) -> None:
    with pytest.raises(SelectionError, match="dispatch metadata") as info:
        Selection.from_metadata(metadata, catalog, strict)
    assert info.value.field == "metadata" and fragment in info.value.message


def test_no_metadata_asks_for_the_defaults(catalog: CharacterSet) -> None:
    for metadata in (None, "", b"  ", "{}"):
        assert Selection.from_metadata(metadata, catalog, strict) == resolve_strictly(catalog)


def test_a_lenient_handler_gets_every_problem_and_the_defaults_are_used(
    catalog: CharacterSet,
) -> None:
    seen: list[Problem] = []
    asked = SelectionRequest(
        character="nobody", language="de", voice="x", subject="maths", level="y"
    )
    selection = resolve(catalog, asked, seen.append)
    assert selection == resolve_strictly(catalog)
    assert [(p.field, p.kind) for p in seen] == [
        ("character", "unknown"),
        ("language", "unknown"),
        ("voice", "unknown"),
        ("subject", "not_taken"),
        ("level", "not_taken"),
    ]
    assert seen[0].fallback == "watercooler" and seen[1].character == "watercooler"


def test_room_choice_carries_the_character(catalog: CharacterSet) -> None:
    selection = resolve_strictly(catalog, character="tutor", subject="maths")
    choice = RoomChoice.of(selection, catalog)
    assert choice.character == catalog.get("tutor") and choice.character_id == "tutor"
    assert (choice.voice, choice.language, choice.subject, choice.level) == (
        selection.voice,
        selection.language,
        selection.subject,
        selection.level,
    )
    with pytest.raises(KeyError):
        RoomChoice.of(Selection(character="nobody", voice="v", language="en"), catalog)


def test_the_metadata_fields_are_the_selection_fields() -> None:
    assert FIELDS == tuple(Selection.__dataclass_fields__)
    assert FIELDS == tuple(SelectionRequest.__dataclass_fields__)
