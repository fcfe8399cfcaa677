"""The one characters schema: the repository's file, defaults, and refusals that name the place."""

import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from catalog.characters import (
    DEFAULT_CHARACTERS_FILE,
    DEFAULT_TOOLS,
    INSTRUCTION_TYPES,
    KNOWN_TOOLS,
    CharactersError,
    ConstantInstructions,
    Instructions,
    InstructionType,
    QuizShowInstructions,
    load_characters,
    parse_characters,
)
from tests.samples import sample_catalog_data

REPO_ROOT = Path(__file__).resolve().parents[3]


def _minimal(**overrides: Any) -> dict[str, Any]:
    character = {
        "id": "a",
        "name": "A",
        "language": "en",
        "voice": "v.safetensors",
        "instructions": {"type": "smalltalk"},
    }
    character.update(overrides)
    return {"default": "a", "characters": [character]}


def test_the_repository_file_is_the_default() -> None:
    assert DEFAULT_CHARACTERS_FILE == REPO_ROOT / "characters.yaml"


def test_the_real_file_loads_with_every_instruction_type() -> None:
    characters = load_characters()
    assert characters.default == "watercooler"
    assert characters.default_character.id == "watercooler"
    types = {c.id: c.instructions.type for c in characters.characters}
    assert types == {
        "watercooler": "smalltalk",
        "quiz-show": "quiz_show",
        "gertrude": "life_advice",
        "dev-news": "news",
        "explanation": "explanation",
        "charles": "constant",
        "developpeuse": "smalltalk",
        "fabieng": "constant",
        "tutor": "tutor",
        "moshi": "moshi",
    }
    assert [c.id for c in characters.characters if c.duplex] == ["moshi"]
    for character in characters.characters:
        assert set(character.tools) >= set(DEFAULT_TOOLS), character.id
        assert set(character.tools) <= KNOWN_TOOLS, character.id
        for voice in character.voices():
            assert voice.endswith(".safetensors")


def test_the_real_file_details() -> None:
    characters = load_characters()
    tutor = characters.get("tutor")
    assert tutor is not None
    assert tutor.takes_subject and tutor.languages == ("en", "fr")
    assert set(tutor.subjects) >= {"maths", "physics", "history", "french", "english"}
    assert tutor.levels == ("beginner", "intermediate", "advanced")
    assert tutor.voice_for("fr") != tutor.voice_for("en") == tutor.voice
    assert {"record_answer", "learner_progress"} <= set(tutor.tools)
    assert tutor.instructions.persona_for("fr") != tutor.instructions.persona_for("en")

    quiz = characters.get("quiz-show")
    assert quiz is not None and isinstance(quiz.instructions, QuizShowInstructions)
    assert quiz.instructions.questions == 5 and "record_answer" in quiz.tools
    assert quiz.spoken_name == "Quinn"

    charles = characters.get("charles")
    assert charles is not None and isinstance(charles.instructions, ConstantInstructions)
    assert charles.languages == ("fr",) and "Charles" in charles.instructions.text_for("fr")
    watercooler = characters.default_character
    assert watercooler.spoken_name == watercooler.name == "Watercooler"
    assert characters.get("nobody") is None
    assert len(characters.voices()) == len(set(characters.voices()))


def test_repo_characters_file_loads_with_the_expected_characters() -> None:
    catalog = load_characters(REPO_ROOT / "characters.yaml")
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


def test_minimal_character_gets_defaults() -> None:
    characters = parse_characters(_minimal())
    a = characters.default_character
    assert a.languages == ("en",) and a.tools == DEFAULT_TOOLS
    assert a.instructions.persona_for("en") is None
    assert a.voice_for("fr") == "v.safetensors"


def test_per_language_text() -> None:
    characters = parse_characters(
        _minimal(
            languages=["en", "fr"],
            instructions={"type": "constant", "text": {"en": "Hello", "fr": "Bonjour"}},
        )
    )
    instructions = characters.default_character.instructions
    assert isinstance(instructions, ConstantInstructions)
    assert (instructions.text_for("en"), instructions.text_for("fr")) == ("Hello", "Bonjour")


def test_a_bad_file_lists_every_problem() -> None:
    data = {
        "default": "nobody",
        "characters": [
            {
                "id": "a",
                "name": "A",
                "language": "en",
                "voice": "v",
                "instructions": {"type": "sing"},
            },
            {
                "id": "b",
                "name": "B",
                "language": "de",
                "voice": "v",
                "instructions": {"type": "constant"},
            },
            {
                "id": "c",
                "name": "C",
                "language": "en",
                "voice": "v",
                "tools": ["teleport"],
                "instructions": {"type": "quiz_show", "questions": 0, "colour": "red"},
            },
        ],
    }
    with pytest.raises(CharactersError) as caught:
        parse_characters(data, source="test file")
    message = str(caught.value)
    assert message.startswith("test file is invalid:")
    assert "characters[0] (a).instructions" in message and "sing" in message
    assert "characters[1] (b).language" in message
    assert "characters[1] (b).instructions.text" in message
    assert "characters[2] (c).instructions.questions" in message
    assert "characters[2] (c).instructions.colour" in message
    assert "teleport" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"takes_subject": True}, "no subjects are listed"),
        ({"subjects": ["maths"]}, "takes_subject is false"),
        (
            {"takes_subject": True, "subjects": ["maths"], "levels": ["x", "x"]},
            "duplicate levels",
        ),
        (
            {"takes_subject": True, "subjects": ["maths"], "instructions": {"type": "tutor"}},
            None,
        ),
        ({"instructions": {"type": "tutor"}}, "a tutor character must take a subject"),
        ({"languages": ["fr"]}, "language 'en' is not in"),
        ({"voice_by_language": {"fr": "w"}}, "languages it does not speak"),
        ({"instructions": {"type": "constant", "text": "  "}}, "non-empty text"),
        ({"id": "has space"}, "characters[0] (has space).id"),
    ],
)
def test_inconsistent_characters_are_refused(
    overrides: dict[str, Any], expected: str | None
) -> None:
    data = _minimal(**overrides)
    if expected is None:
        parse_characters(data)
        return
    if "id" in overrides:
        data["default"] = overrides["id"]
    with pytest.raises(CharactersError, match=re.escape(expected)):
        parse_characters(data)


def test_set_level_problems() -> None:
    with pytest.raises(CharactersError, match="default 'b' is not a character id"):
        parse_characters({**_minimal(), "default": "b"})
    doubled = _minimal()
    doubled["characters"] *= 2
    with pytest.raises(CharactersError, match="duplicate character ids: a"):
        parse_characters(doubled)
    with pytest.raises(CharactersError, match="<root>"):
        parse_characters(["not", "a", "mapping"])
    with pytest.raises(CharactersError, match="no characters are listed"):
        parse_characters({"default": "a", "characters": []})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CharactersError, match="cannot read characters file"):
        load_characters(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("default: [unclosed", encoding="utf-8")
    with pytest.raises(CharactersError, match="not valid YAML"):
        load_characters(broken)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_minimal()), encoding="utf-8")
    assert load_characters(good).ids == ("a",)


def test_models_are_frozen() -> None:
    character = load_characters().default_character
    with pytest.raises(ValueError):
        character.name = "changed"  # type: ignore[misc]


# --- the token service's sample catalogue and its refusals ------------------------------------


def test_unknown_character_keys_are_ignored() -> None:
    catalog = parse_characters(sample_catalog_data())
    watercooler = catalog.get("watercooler")
    assert watercooler is not None and watercooler.instructions.type == "smalltalk"
    assert catalog.get("tutor") is not None  # its `future_field` is ignored


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
            "characters[3] (tutor)",
        ),
        ({"default": "a", "characters": [{"id": "a", "name": "A", "voice": "v"}]}, "language"),
        (
            {
                "default": "a",
                "characters": [
                    {
                        "id": "a",
                        "name": "A",
                        "language": "en",
                        "voice": "v",
                        "takes_subject": True,
                        "instructions": {"type": "tutor"},
                    }
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
            "characters[0] (a b).id",
        ),
        ("not a mapping", "<root>"),
    ],
)
def test_malformed_catalogues_are_refused_with_the_place(data: Any, fragment: str) -> None:
    with pytest.raises(CharactersError, match="is invalid") as info:
        parse_characters(data)
    assert fragment in str(info.value)


def test_duplicate_ids_are_refused() -> None:
    data = sample_catalog_data()
    data["characters"].append(dict(data["characters"][0]))
    with pytest.raises(CharactersError, match="duplicate character ids: watercooler"):
        parse_characters(data)


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(CharactersError, match="KYUTAI_CHARACTERS_FILE"):
        load_characters(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: [unclosed\n")
    with pytest.raises(CharactersError, match="not valid YAML"):
        load_characters(bad)


def test_the_instruction_type_literal_names_every_instructions_class() -> None:
    union = get_args(Instructions)[0]
    tags = {get_args(cls.model_fields["type"].annotation)[0] for cls in get_args(union)}
    assert tags == set(INSTRUCTION_TYPES) == set(get_args(InstructionType))


# --- duplex characters (Moshi) ------------------------------------------------------------------


def duplex(**overrides: object) -> dict[str, object]:
    character: dict[str, object] = {
        "id": "m",
        "name": "M",
        "mode": "duplex",
        "language": "en",
        "voice": "v.safetensors",
    }
    character.update(overrides)
    return {"default": "m", "characters": [character]}


def test_a_duplex_character_needs_no_instructions_and_gets_its_intents() -> None:
    chars = parse_characters(
        duplex(
            tools=["current_time", "look_up_definition"],
            intents=[
                {"says": "What  time is it", "tool": "current_time", "spoken": True},
                {"says": ["define"], "tool": "look_up_definition", "argument": "term"},
                {"says": ["bye"], "speaker": "agent", "tool": "end_call"},  # a default tool
            ],
        )
    )
    m = chars.default_character
    assert m.duplex and m.instructions.type == "moshi"
    assert [r.says for r in m.intents] == [("what time is it",), ("define",), ("bye",)]
    assert m.intents[0].spoken and not m.intents[1].spoken
    assert m.intents[2].speaker == "agent"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"instructions": {"type": "smalltalk"}}, "a duplex character takes no instructions"),
        ({"language": "fr"}, "speaks English only"),
        ({"languages": ["en", "fr"]}, "speaks English only"),
        ({"tools": ["record_answer"]}, "need an LLM"),
        ({"intents": [{"says": "x", "tool": "look_up_definition"}]}, "not in the character's"),
        ({"intents": [{"says": " ", "tool": "current_time"}]}, "blank"),
        ({"intents": [{"says": [], "tool": "current_time"}]}, "at least 1"),
        ({"intents": [{"says": "x", "tool": "current_time", "when": 1}]}, "xtra"),
        ({"intents": [{"says": "x", "tool": "current_time", "speaker": "me"}]}, "speaker"),
    ],
)
def test_bad_duplex_characters_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(CharactersError, match=message):
        parse_characters(duplex(**overrides))


def test_duplex_fields_on_a_cascade_character_are_refused() -> None:
    with pytest.raises(CharactersError, match="moshi instructions are for a duplex character"):
        parse_characters(_minimal(instructions={"type": "moshi"}))
    with pytest.raises(CharactersError, match="intents are for a duplex character"):
        parse_characters(_minimal(intents=[{"says": "x", "tool": "current_time"}]))
    with pytest.raises(CharactersError, match="mode"):
        parse_characters(_minimal(mode="both"))
