import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from agent.conversation.prompt import (
    BY_TYPE,
    build_system_prompt,
    draw_quiz_questions,
    pick_conversation_starter,
    time_of_day,
)
from agent.conversation.silence import GOODBYE, SILENCE_MESSAGE
from agent.conversation.texts import number_words
from agent.settings import AgentSettings
from catalog.characters import INSTRUCTION_TYPES, QuizShowInstructions, load_characters
from catalog.dispatch import RoomChoice
from catalog.prompt_data import load_prompt_data

CHARACTERS = load_characters()
DATA = load_prompt_data()
NOW = datetime(2025, 3, 14, 19, 5, tzinfo=UTC)  # a Friday evening
# The one silence-turn default: the setting's.
MAX_SILENT_TURNS: int = AgentSettings.model_fields["max_silent_turns"].default


def _choice(
    character_id: str,
    language: str | None = None,
    subject: str | None = None,
    level: str | None = None,
) -> RoomChoice:
    character = CHARACTERS.get(character_id)
    assert character is not None
    language = language or character.language
    if character.takes_subject:
        subject = subject or character.subjects[0]
        level = level or character.levels[0]
    return RoomChoice(
        character=character,
        voice=character.voice_for(language),
        language=language,
        subject=subject,
        level=level,
    )


def _prompt(choice: RoomChoice, seed: int = 0, **kwargs: object) -> str:
    kwargs.setdefault("max_silent_turns", MAX_SILENT_TURNS)
    return build_system_prompt(choice, DATA, now=NOW, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]


ALL_CHOICES = [_choice(c.id, language) for c in CHARACTERS.characters for language in c.languages]


def test_every_instruction_type_has_an_entry() -> None:
    assert set(BY_TYPE) == set(INSTRUCTION_TYPES)
    assert {c.instructions.type for c in CHARACTERS.characters} <= set(BY_TYPE)


@pytest.mark.parametrize("choice", ALL_CHOICES, ids=lambda c: f"{c.character.id}-{c.language}")
def test_every_character_builds_a_complete_prompt(choice: RoomChoice) -> None:
    prompt = _prompt(choice)
    assert choice.character.spoken_name in prompt
    assert not re.search(r"\{[a-z_]*\}", prompt), "a placeholder was left unformatted"
    assert f"{SILENCE_MESSAGE}" in prompt
    assert GOODBYE[choice.language] in prompt
    assert "end_call" in prompt and "current_time" in prompt
    assert "Kyutai" in prompt and "LiveKit" in prompt
    assert prompt.count("## ") >= 7
    persona = choice.character.instructions.persona_for(choice.language)
    if persona:
        assert persona.strip() in prompt


def test_english_sections() -> None:
    prompt = _prompt(_choice("gertrude"))
    for expected in (
        "short sentences",
        "no markdown",
        "no emoji",
        "lists",
        "twenty-five percent",
        "speech recognition",
        "mistakes",
        "Speak English",
        "switch to French",
        "Your name is Gertrude",
        "open-source voice agent",
        'exactly "..."',
        f"silent {number_words(MAX_SILENT_TURNS, 'en')} times in a row",
        'ending with "Bye!", then call the end_call tool',
        "professional",
    ):
        assert expected in prompt, expected


@pytest.mark.parametrize("character_id", ["charles", "developpeuse", "fabieng"])
def test_french_characters_get_french_text(character_id: str) -> None:
    prompt = _prompt(_choice(character_id))
    for expected in (
        "Parle français",
        "passe à l'anglais",
        "reconnaissance vocale",
        "pas d'emoji",
        "Tu t'appelles",
        "exactement « ... »",
        "silencieux trois fois de suite",
        "« Au revoir ! »",
    ):
        assert expected in prompt, expected
    for english in ("Speak English", "Your name is", "How to speak", "the user"):
        assert english not in prompt


def test_the_tutor_speaks_the_rooms_language() -> None:
    english = _prompt(_choice("tutor", "en", "history", "intermediate"))
    french = _prompt(_choice("tutor", "fr", "history", "intermediate"))
    assert "Speak English" in english and "tutor for history at intermediate level" in english
    assert "Parle français" in french and "tuteur en histoire, niveau intermédiaire" in french
    assert "applique-le en français" in french


def test_the_silence_limit_follows_the_setting() -> None:
    assert "silent five times in a row" in _prompt(_choice("gertrude"), max_silent_turns=5)
    assert "silencieux deux fois de suite" in _prompt(_choice("charles"), max_silent_turns=2)


def test_tools_mentioned_are_the_tools_given() -> None:
    choice = _choice("tutor", subject="maths")
    full = _prompt(choice)
    assert "record_answer" in full and "learner_progress" in full
    assert "look_up_definition" in full
    bare = _prompt(choice, tools=())
    for name in ("end_call", "current_time", "record_answer", "learner_progress"):
        assert name not in bare
    # Without the tool, the goodbye phrase still lets the conversation code hang up.
    assert 'goodbye ending with "Bye!"; the call ends after it' in bare


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        (0, "night"),
        (4, "night"),
        (5, "morning"),
        (11, "morning"),
        (12, "afternoon"),
        (17, "afternoon"),
        (18, "evening"),
        (21, "evening"),
        (22, "night"),
        (23, "night"),
    ],
)
def test_time_of_day(hour: int, expected: str) -> None:
    assert time_of_day(datetime(2025, 1, 1, hour, 30)) == expected


def test_smalltalk_gets_the_time_and_a_starter() -> None:
    english = _prompt(_choice("watercooler"))
    assert "Right now it is Friday evening (about 19:05)" in english
    french = _prompt(_choice("developpeuse"))
    assert "nous sommes vendredi soir (il est environ 19:05)" in french
    morning = build_system_prompt(
        _choice("watercooler"),
        DATA,
        now=NOW - timedelta(hours=10),
        rng=random.Random(0),
        max_silent_turns=MAX_SILENT_TURNS,
    )
    assert "Friday morning (about 09:05)" in morning
    starters_en = [s for s in DATA.starters["en"] if s in english]
    starters_fr = [s for s in DATA.starters["fr"] if s in french]
    assert len(starters_en) == 1 and len(starters_fr) == 1


def test_conversation_starters_are_seeded() -> None:
    picks = [pick_conversation_starter(DATA, "en", random.Random(seed)) for seed in range(30)]
    assert picks == [pick_conversation_starter(DATA, "en", random.Random(s)) for s in range(30)]
    assert len(set(picks)) > 3
    assert all(p in DATA.starters["en"] for p in picks)
    assert pick_conversation_starter(DATA, "fr", random.Random(1)) in DATA.starters["fr"]


def test_quiz_draws_are_seeded_and_distinct() -> None:
    first = draw_quiz_questions(DATA, "en", 5, random.Random(42))
    again = draw_quiz_questions(DATA, "en", 5, random.Random(42))
    other = draw_quiz_questions(DATA, "en", 5, random.Random(43))
    assert first == again and first != other
    assert len(first) == 5 and len({q.question for q in first}) == 5
    french = draw_quiz_questions(DATA, "fr", 5, random.Random(42))
    assert all(q in DATA.quiz["fr"] for q in french)
    assert len(draw_quiz_questions(DATA, "fr", 500, random.Random(0))) == len(DATA.quiz["fr"])


def test_the_quiz_prompt_lists_the_drawn_questions() -> None:
    choice = _choice("quiz-show")
    instructions = choice.character.instructions
    assert isinstance(instructions, QuizShowInstructions)
    prompt = _prompt(choice, seed=7)
    drawn = draw_quiz_questions(DATA, "en", instructions.questions, random.Random(7))
    for number, question in enumerate(drawn, start=1):
        assert f"Question {number}: {question.question}" in prompt
        assert question.answer in prompt
    assert "quiz of five questions" in prompt and "record_answer" in prompt
    assert _prompt(choice, seed=7) == prompt and _prompt(choice, seed=8) != prompt


@pytest.mark.parametrize("subject", CHARACTERS.get("tutor").subjects)  # type: ignore[union-attr]
@pytest.mark.parametrize("level", CHARACTERS.get("tutor").levels)  # type: ignore[union-attr]
def test_a_tutor_plan_exists_for_every_subject_and_level(subject: str, level: str) -> None:
    plan = DATA.tutor_plan(subject, level)
    assert plan is not None
    assert plan.plan.goals.strip() and len(plan.plan.exercises) >= 3 and plan.plan.adapt.strip()
    for language in ("en", "fr"):
        prompt = _prompt(_choice("tutor", language, subject, level))
        assert plan.plan.goals.strip() in prompt
        assert all(exercise in prompt for exercise in plan.plan.exercises)
        assert DATA.subject_name(subject, language) in prompt


def test_news_and_explanation() -> None:
    news = _prompt(_choice("dev-news"))
    assert "news anchor" in news and "no internet access" in news
    assert "never invent specific facts" in news
    assert "Your name is Dev." in news
    explanation = _prompt(_choice("explanation"))
    for expected in ("speech-to-text", "end-of-turn", "OpenAI-compatible", "text-to-speech"):
        assert expected in explanation


def test_the_prompt_defaults_to_the_clock_and_fresh_randomness() -> None:
    prompt = build_system_prompt(_choice("watercooler"), DATA, max_silent_turns=MAX_SILENT_TURNS)
    assert "Right now it is" in prompt


def test_number_words() -> None:
    assert number_words(3, "en") == "three" and number_words(5, "fr") == "cinq"
    assert number_words(17, "fr") == "dix-sept" and number_words(99, "en") == "99"
    assert number_words(3, "de") == "three"
