"""The agent reads the dispatch metadata leniently: a bad value is logged, its default used."""

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.session import parse_room_metadata
from catalog.characters import Character, CharacterSet, load_characters
from catalog.dispatch import RoomChoice, Selection

LOGGER = "kyutai.agent"
CHARACTERS = load_characters()
_tutor = CHARACTERS.get("tutor")
assert _tutor is not None
TUTOR: Character = _tutor


@pytest.fixture
def characters() -> CharacterSet:
    return CHARACTERS


def _meta(**fields: Any) -> str:
    return json.dumps(fields)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING
    ]


def _default_choice(characters: CharacterSet) -> RoomChoice:
    default = characters.default_character
    return RoomChoice(character=default, voice=default.voice, language=default.language)


def test_a_full_valid_request_is_taken_as_is(
    characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    metadata = _meta(
        character="tutor", voice=TUTOR.voice, language="fr", subject="history", level="advanced"
    )
    choice = parse_room_metadata(metadata, characters)
    assert choice == RoomChoice(
        character=TUTOR, voice=TUTOR.voice, language="fr", subject="history", level="advanced"
    )
    assert choice.character_id == "tutor"
    assert _warnings(caplog) == []


def test_what_the_token_service_writes_is_understood(characters: CharacterSet) -> None:
    selection = Selection(
        character="tutor", voice=TUTOR.voice_for("fr"), language="fr", subject="maths"
    )
    choice = parse_room_metadata(selection.to_metadata(), characters)
    assert (choice.character_id, choice.voice, choice.language, choice.subject) == (
        "tutor",
        TUTOR.voice_for("fr"),
        "fr",
        "maths",
    )
    assert choice.level == "beginner"
    plain = Selection(character="charles", voice="x", language="fr").to_metadata()
    assert parse_room_metadata(plain, characters).subject is None


@pytest.mark.parametrize("metadata", [None, "", "   ", b"", "{}", b"{}"])
def test_no_metadata_means_the_defaults_without_warnings(
    metadata: str | bytes | None, characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    assert parse_room_metadata(metadata, characters) == _default_choice(characters)
    assert _warnings(caplog) == []


def test_the_voice_follows_the_language_unless_one_is_chosen(characters: CharacterSet) -> None:
    french = parse_room_metadata(
        _meta(character="tutor", language="fr", subject="maths"), characters
    )
    assert french.voice == TUTOR.voice_for("fr") != TUTOR.voice
    other = characters.get("charles")
    assert other is not None
    chosen = parse_room_metadata(
        _meta(character="tutor", voice=other.voice, subject="maths"), characters
    )
    assert chosen.voice == other.voice


@pytest.mark.parametrize(
    "metadata",
    ["{not json", "character=tutor", b"\xff\xfe", "[1, 2]", '"tutor"', "null", "42"],
)
def test_malformed_metadata_falls_back_with_a_warning(
    metadata: str | bytes, characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    assert parse_room_metadata(metadata, characters) == _default_choice(characters)
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "dispatch metadata" in warnings[0] and "default character" in warnings[0]


def test_unknown_character(characters: CharacterSet, caplog: pytest.LogCaptureFixture) -> None:
    choice = parse_room_metadata(_meta(character="pirate", language="fr"), characters)
    # The default character does not speak French either: both values are reported.
    assert choice == _default_choice(characters)
    warnings = _warnings(caplog)
    assert "unknown character 'pirate'" in warnings[0]
    assert "watercooler" in warnings[0] and "tutor" in warnings[0]
    assert "unknown language 'fr' for character 'watercooler'" in warnings[1]


def test_unknown_language(characters: CharacterSet, caplog: pytest.LogCaptureFixture) -> None:
    choice = parse_room_metadata(_meta(character="charles", language="de"), characters)
    assert choice.language == "fr"
    (warning,) = _warnings(caplog)
    assert "unknown language 'de'" in warning and "valid: fr" in warning
    assert "using 'fr'" in warning


def test_unknown_voice(characters: CharacterSet, caplog: pytest.LogCaptureFixture) -> None:
    choice = parse_room_metadata(
        _meta(character="tutor", language="fr", voice="nope.safetensors", subject="maths"),
        characters,
    )
    assert choice.voice == TUTOR.voice_for("fr")
    (warning,) = _warnings(caplog)
    assert "unknown voice 'nope.safetensors'" in warning and TUTOR.voice in warning


def test_unknown_subject(characters: CharacterSet, caplog: pytest.LogCaptureFixture) -> None:
    choice = parse_room_metadata(_meta(character="tutor", subject="alchemy"), characters)
    assert choice.subject == TUTOR.subjects[0]
    (warning,) = _warnings(caplog)
    assert "unknown subject 'alchemy' for character 'tutor'" in warning
    assert "maths, physics" in warning


def test_missing_subject(characters: CharacterSet, caplog: pytest.LogCaptureFixture) -> None:
    choice = parse_room_metadata(_meta(character="tutor", level="advanced"), characters)
    assert (choice.subject, choice.level) == (TUTOR.subjects[0], "advanced")
    (warning,) = _warnings(caplog)
    assert "needs a subject" in warning


def test_unknown_level(characters: CharacterSet, caplog: pytest.LogCaptureFixture) -> None:
    choice = parse_room_metadata(
        _meta(character="tutor", subject="physics", level="guru"), characters
    )
    assert (choice.subject, choice.level) == ("physics", "beginner")
    (warning,) = _warnings(caplog)
    assert "unknown level 'guru'" in warning
    assert "beginner, intermediate, advanced" in warning


def test_missing_level_is_the_first_without_warning(
    characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    choice = parse_room_metadata(
        _meta(character="tutor", subject="physics", level=None), characters
    )
    assert choice.level == "beginner"
    assert _warnings(caplog) == []


def test_subject_for_a_character_without_one(
    characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    choice = parse_room_metadata(
        _meta(character="gertrude", subject="maths", level="advanced"), characters
    )
    assert (choice.subject, choice.level) == (None, None)
    warnings = _warnings(caplog)
    assert len(warnings) == 2 and "takes no subject" in warnings[0]


def test_wrong_types_and_unknown_keys(
    characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    choice = parse_room_metadata(json.dumps({"character": 5, "mood": "happy"}), characters)
    assert choice == _default_choice(characters)
    warnings = _warnings(caplog)
    assert any("unknown keys ['mood']" in w for w in warnings)
    assert any("unknown character 5" in w for w in warnings)


def test_huge_values_are_not_logged_in_full(
    characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    parse_room_metadata(_meta(character="x" * 10_000), characters)
    (warning,) = _warnings(caplog)
    assert len(warning) < 600 and "..." in warning


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.binary(),
        st.dictionaries(
            st.sampled_from(["character", "voice", "language", "subject", "level", "x"]),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=20),
                st.sampled_from(["tutor", "charles", "fr", "en", "maths", "advanced"]),
                st.lists(st.integers(), max_size=2),
            ),
        ).map(json.dumps),
    )
)
def test_never_raises_and_always_resolves_to_an_offered_choice(metadata: str | bytes) -> None:
    choice = parse_room_metadata(metadata, CHARACTERS)
    character = choice.character
    assert CHARACTERS.get(character.id) == character
    assert choice.language in character.languages
    assert choice.voice in CHARACTERS.voices()
    if character.takes_subject:
        assert choice.subject in character.subjects and choice.level in character.levels
    else:
        assert choice.subject is None and choice.level is None


def test_the_agent_publishes_what_it_replaced(characters: CharacterSet) -> None:
    from agent.ops.dispatch import CHARACTER_ATTRIBUTE, WARNING_ATTRIBUTE, played

    problems: list[str] = []
    choice = parse_room_metadata(_meta(character="pirate"), characters, problems)
    attributes = played(choice, problems)
    assert attributes[CHARACTER_ATTRIBUTE] == choice.character_id
    assert "unknown character 'pirate'" in attributes[WARNING_ATTRIBUTE]
    good: list[str] = []
    assert WARNING_ATTRIBUTE not in played(parse_room_metadata(None, characters, good), good)
    assert good == []


def test_a_request_for_moshi_is_known_before_it_is_accepted(
    characters: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    from catalog.dispatch import wants_duplex

    assert wants_duplex(_meta(character="moshi"), characters)
    assert not wants_duplex(_meta(character="tutor"), characters)
    # what the job would fall back to (the default character) decides, and nothing is logged:
    # the job reports the metadata's problems itself
    assert not wants_duplex("not json", characters) and not wants_duplex(None, characters)
    assert not wants_duplex(_meta(character="nobody"), characters)
    assert _warnings(caplog) == []
