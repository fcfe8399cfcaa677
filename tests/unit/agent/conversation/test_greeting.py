import pytest

from agent.conversation.prompt import greeting_instruction
from catalog.characters import load_characters
from catalog.dispatch import RoomChoice
from catalog.prompt_data import load_prompt_data

CHARACTERS = load_characters()
DATA = load_prompt_data()


def _choice(character_id: str, language: str, subject: str | None = None) -> RoomChoice:
    character = CHARACTERS.get(character_id)
    assert character is not None
    level = character.levels[-1] if subject else None
    return RoomChoice(character, character.voice_for(language), language, subject, level)


@pytest.mark.parametrize(
    "choice",
    [
        _choice(c.id, language, c.subjects[0] if c.takes_subject else None)
        for c in CHARACTERS.characters
        for language in c.languages
    ],
    ids=lambda c: f"{c.character.id}-{c.language}",
)
def test_every_character_has_a_greeting_in_its_language(choice: RoomChoice) -> None:
    text = greeting_instruction(choice, DATA)
    assert choice.character.spoken_name in text
    assert "{" not in text and "}" not in text
    if choice.language == "fr":
        assert text.startswith("Commence la conversation") and "en français" in text
    else:
        assert text.startswith("Start the conversation") and "in English" in text


def test_greetings_fit_the_character() -> None:
    assert "five questions" in greeting_instruction(_choice("quiz-show", "en"))
    assert "Quinn" in greeting_instruction(_choice("quiz-show", "en"))
    assert "conversation starter" in greeting_instruction(_choice("watercooler", "en"))
    assert "how this voice agent works" in greeting_instruction(_choice("explanation", "en"))
    tutor_fr = greeting_instruction(_choice("tutor", "fr", "maths"), DATA)
    assert "en mathématiques, niveau avancé" in tutor_fr
    tutor_en = greeting_instruction(_choice("tutor", "en", "physics"), DATA)
    assert "work on physics together at advanced level" in tutor_en
    # Without the data the subject id is used as is.
    assert "en maths" in greeting_instruction(_choice("tutor", "fr", "maths"))
