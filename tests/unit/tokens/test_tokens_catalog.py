import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.tokens.tokens_samples import TUTOR_FR_VOICE, sample_catalog_data
from tokens.catalog import (
    Catalog,
    CatalogError,
    Selection,
    SelectionError,
    load_catalog,
    parse_catalog,
    resolve_selection,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_repo_characters_file_loads_with_the_expected_characters() -> None:
    catalog = load_catalog(REPO_ROOT / "characters.yaml")
    ids = {c.id for c in catalog.characters}
    assert {
        "watercooler",
        "quiz-show",
        "gertrude",
        "dev-news",
        "explanation",
        "charles",
        "developpeuse",
        "fabieng",
        "tutor",
    } <= ids
    tutor = catalog.get("tutor")
    assert tutor is not None and tutor.takes_subject and set(tutor.languages) == {"en", "fr"}
    for character in catalog.characters:
        for voice in character.voices():
            assert voice.endswith(".safetensors"), voice


def test_defaults_come_from_the_catalogue(catalog: Catalog) -> None:
    assert resolve_selection(catalog) == Selection(
        character="watercooler",
        voice="unmute-prod-website/p329_022.wav.1e68beda@240.safetensors",
        language="en",
    )


def test_tutor_takes_subject_level_and_a_voice_per_language(catalog: Catalog) -> None:
    selection = resolve_selection(catalog, character="tutor", subject="maths", language="fr")
    assert selection == Selection(
        character="tutor", voice=TUTOR_FR_VOICE, language="fr", subject="maths", level="beginner"
    )
    chosen = resolve_selection(catalog, character="tutor", subject="history", level="advanced")
    assert (chosen.language, chosen.level) == ("en", "advanced")


def test_any_catalogue_voice_may_be_chosen(catalog: Catalog) -> None:
    selection = resolve_selection(catalog, character="watercooler", voice=TUTOR_FR_VOICE)
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
    catalog: Catalog, kwargs: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(SelectionError) as info:
        resolve_selection(catalog, **kwargs)
    assert info.value.field == field
    assert fragment in info.value.message


def test_error_lists_the_choices(catalog: Catalog) -> None:
    with pytest.raises(SelectionError, match="choose one of: charles, tutor, watercooler"):
        resolve_selection(catalog, character="x")


def test_metadata_is_compact_json() -> None:
    selection = Selection(character="tutor", voice="v", language="fr", subject="maths", level="b")
    assert json.loads(selection.to_metadata()) == {
        "character": "tutor",
        "voice": "v",
        "language": "fr",
        "subject": "maths",
        "level": "b",
    }


def test_unknown_keys_are_ignored_and_instructions_keep_theirs() -> None:
    catalog = parse_catalog(sample_catalog_data())
    watercooler = catalog.get("watercooler")
    assert watercooler is not None and watercooler.instructions is not None
    assert watercooler.instructions.type == "smalltalk"


def _mutated(**changes: Any) -> dict[str, Any]:
    data = sample_catalog_data()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_mutated(default="nobody"), "default 'nobody' is not a character id"),
        (_mutated(characters=[]), "characters"),
        (
            _mutated(characters=[*sample_catalog_data()["characters"], {"id": "tutor"}]),
            "characters.3",
        ),
        ({"default": "a", "characters": [{"id": "a", "name": "A", "voice": "v"}]}, "language"),
        (
            {
                "default": "a",
                "characters": [
                    {"id": "a", "name": "A", "language": "en", "voice": "v", "takes_subject": True}
                ],
            },
            "no subjects",
        ),
        (
            {
                "default": "a",
                "characters": [
                    {"id": "a b", "name": "A", "language": "en", "voice": "v"},
                ],
            },
            "characters.0.id",
        ),
        ("not a mapping", "<root>"),
    ],
)
def test_malformed_catalogues_are_refused_with_the_place(data: Any, fragment: str) -> None:
    with pytest.raises(CatalogError, match="is invalid") as info:
        parse_catalog(data)
    assert fragment in str(info.value)


def test_duplicate_ids_are_refused() -> None:
    data = sample_catalog_data()
    data["characters"].append(dict(data["characters"][0]))
    with pytest.raises(CatalogError, match="duplicate character ids: watercooler"):
        parse_catalog(data)


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="KYUTAI_CHARACTERS_FILE"):
        load_catalog(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: [unclosed\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)
