"""The prompt data (catalog/data): its schema, its loader and what each instruction type needs."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from catalog.characters import INSTRUCTION_TYPES, load_characters, parse_characters
from catalog.load import load_catalog
from catalog.prompt_data import (
    DATA_DIR,
    NEEDS,
    PromptData,
    PromptDataError,
    load_prompt_data,
)
from catalog.validation import CatalogError

CHARACTERS = load_characters()
DATA = load_prompt_data()


def test_data_is_found_next_to_the_module() -> None:
    assert DATA_DIR == Path(__file__).resolve().parents[3] / "catalog" / "data"


def test_every_instruction_type_has_an_entry() -> None:
    assert set(NEEDS) == set(INSTRUCTION_TYPES)
    assert {c.instructions.type for c in CHARACTERS.characters} <= set(NEEDS)


def test_the_data_covers_every_character() -> None:
    assert DATA.problems(CHARACTERS) == []
    DATA.check(CHARACTERS)


def test_quiz_bank() -> None:
    for language, minimum in (("en", 60), ("fr", 20)):
        bank = DATA.quiz[language]
        assert len(bank) >= minimum
        questions = [q.question.lower() for q in bank]
        assert len(set(questions)) == len(questions), "duplicate questions"
        assert all(q.answer.strip() for q in bank)


def test_tutor_plan_lookup_edges() -> None:
    assert DATA.tutor_plan("alchemy", "beginner") is None
    assert DATA.tutor_plan("maths", "guru") is None
    first = DATA.tutor_plan("maths", None)
    assert first is not None and first.level == "beginner"
    assert DATA.subject_name("alchemy", "fr") == "alchemy"


def test_missing_plans_are_reported() -> None:
    characters = parse_characters(
        {
            "default": "t",
            "characters": [
                {
                    "id": "t",
                    "name": "T",
                    "language": "en",
                    "voice": "v",
                    "takes_subject": True,
                    "subjects": ["maths", "alchemy"],
                    "levels": ["beginner", "guru"],
                    "instructions": {"type": "tutor"},
                },
                {
                    "id": "q",
                    "name": "Q",
                    "language": "fr",
                    "voice": "v",
                    "instructions": {"type": "quiz_show", "questions": 20},
                },
            ],
        }
    )
    problems = DATA.problems(characters)
    assert not any(p.startswith("q:") for p in problems)
    lacking = replace(DATA, quiz={"en": DATA.quiz["en"], "fr": DATA.quiz["fr"][:3]}, starters={})
    problems = lacking.problems(characters)
    assert "q: 20 quiz questions needed in 'fr', quiz_questions.yaml has 3" in problems
    assert "t: no tutor plan for subject 'maths' at level 'guru' in tutor_plans.yaml" in problems
    assert sum("alchemy" in p for p in problems) == 2
    assert lacking.problems(load_characters())[0].startswith("watercooler: no conversation")
    with pytest.raises(PromptDataError, match="alchemy"):
        DATA.check(characters)


def test_data_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PromptDataError, match="cannot read"):
        load_prompt_data(tmp_path)
    for name in ("quiz_questions.yaml", "conversation_starters.yaml", "tutor_plans.yaml"):
        (tmp_path / name).write_text((DATA_DIR / name).read_text(encoding="utf-8"), "utf-8")
    assert isinstance(load_prompt_data(tmp_path), PromptData)
    (tmp_path / "quiz_questions.yaml").write_text(
        yaml.safe_dump({"en": [{"q": "Why?"}], "de": []}), encoding="utf-8"
    )
    with pytest.raises(PromptDataError) as caught:
        load_prompt_data(tmp_path)
    assert "en.0.a" in str(caught.value) and "de" in str(caught.value)
    (tmp_path / "tutor_plans.yaml").write_text("subjects: [", encoding="utf-8")
    (tmp_path / "quiz_questions.yaml").write_text("en: []", encoding="utf-8")
    with pytest.raises(PromptDataError, match="not valid YAML"):
        load_prompt_data(tmp_path)


def test_load_catalog_checks_the_characters_against_the_data(tmp_path: Path) -> None:
    catalog = load_catalog()
    assert catalog.characters == CHARACTERS and catalog.prompt_data == DATA
    characters = tmp_path / "characters.yaml"
    characters.write_text(
        yaml.safe_dump(
            {
                "default": "t",
                "characters": [
                    {
                        "id": "t",
                        "name": "T",
                        "language": "en",
                        "voice": "v",
                        "takes_subject": True,
                        "subjects": ["alchemy"],
                        "instructions": {"type": "tutor"},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(PromptDataError) as caught:
        load_catalog(characters)
    assert "t: no tutor plan for subject 'alchemy' in tutor_plans.yaml" in str(caught.value)
    with pytest.raises(CatalogError, match="cannot read characters file"):
        load_catalog(tmp_path / "missing.yaml")
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(data_dir=tmp_path)
