"""Speech normalisation and word re-chunking for the Kyutai TTS plugin."""

from __future__ import annotations

import pytest

from livekit.plugins.kyutai import numbers
from livekit.plugins.kyutai.text import (
    WordChunker,
    clean_display,
    language_of_voice,
    normalize_text,
    normalize_word,
)


@pytest.mark.parametrize(
    ("n", "en", "fr"),
    [
        (0, "zero", "zéro"),
        (15, "fifteen", "quinze"),
        (21, "twenty-one", "vingt et un"),
        (71, "seventy-one", "soixante et onze"),
        (80, "eighty", "quatre-vingts"),
        (81, "eighty-one", "quatre-vingt-un"),
        (99, "ninety-nine", "quatre-vingt-dix-neuf"),
        (101, "one hundred one", "cent un"),
        (200, "two hundred", "deux cents"),
        (201, "two hundred one", "deux cent un"),
        (1000, "one thousand", "mille"),
        (2000, "two thousand", "deux mille"),
        (80000, "eighty thousand", "quatre-vingt mille"),
        (200000, "two hundred thousand", "deux cent mille"),
        (2_000_000, "two million", "deux millions"),
        (
            1_234_567,
            "one million two hundred thirty-four thousand five hundred sixty-seven",
            "un million deux cent trente-quatre mille cinq cent soixante-sept",
        ),
        (-5, "minus five", "moins cinq"),
    ],
)
def test_cardinals(n: int, en: str, fr: str) -> None:
    assert numbers.en_cardinal(n) == en
    assert numbers.fr_cardinal(n) == fr


@pytest.mark.parametrize(
    ("n", "en", "fr"),
    [
        (1, "first", "premier"),
        (2, "second", "deuxième"),
        (3, "third", "troisième"),
        (5, "fifth", "cinquième"),
        (9, "ninth", "neuvième"),
        (12, "twelfth", "douzième"),
        (20, "twentieth", "vingtième"),
        (21, "twenty-first", "vingt et unième"),
        (80, "eightieth", "quatre-vingtième"),
        (1000, "one thousandth", "millième"),
    ],
)
def test_ordinals(n: int, en: str, fr: str) -> None:
    assert numbers.en_ordinal(n) == en
    assert numbers.fr_ordinal(n) == fr


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        (
            "I have 3 cats and 1,234 dogs.",
            "I have three cats and one thousand two hundred thirty-four dogs.",
        ),
        ("It costs $5.50 or 20% off!", "It costs five dollars fifty or twenty percent off!"),
        ("Only $1.", "Only one dollar."),
        ("pi is 3.14", "pi is three point one four"),
        ("The 21st century, 1st and 2nd.", "The twenty-first century, first and second."),
        (
            "Meet at 14:30 or 9:05 or 3:00.",
            "Meet at fourteen thirty or nine oh five or three o'clock.",
        ),
        ("rock&roll and/or 2+2=4", "rock and roll and or two plus two equals four"),
        ("Call 0612", "Call zero six one two"),
        ("pages 3-5", "pages three to five"),
        ("It is -5 outside", "It is minus five outside"),
    ],
)
def test_english_numbers_and_symbols(text: str, spoken: str) -> None:
    assert normalize_text(text, "en") == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("J'ai 21 ans et 80 euros.", "J'ai vingt et un ans et quatre-vingts euros."),
        (
            "Il coûte 3,50 € soit 20 % de moins.",
            "Il coûte trois virgule cinquante euros soit vingt pour cent de moins.",
        ),
        ("Le 1er mai, la 2e fois, le 3ème.", "Le premier mai, la deuxième fois, le troisième."),
        ("Rendez-vous à 14h30.", "Rendez-vous à quatorze heures trente."),
        ("Il y a 1\u00a0000\u00a0000 personnes.", "Il y a un million personnes."),
        ("pi vaut 3,14", "pi vaut trois virgule quatorze"),
        ("Toi & moi = 2", "Toi et moi égale deux"),
        ("de 3 à 5 km/h", "de trois à cinq km h"),
    ],
)
def test_french_numbers_and_symbols(text: str, spoken: str) -> None:
    assert normalize_text(text, "fr") == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("**Bold** and _italic_ and `code`.", "Bold and italic and code."),
        ("# Title", "Title"),
        ("- item one", "item one"),
        ("1. first item", "one. first item"),
        ("[click here](https://x.com).", "click here."),
        ("snake_case", "snake case"),
        ("> quoted", "quoted"),
        ("---", ""),
        ("2 + 2", "two plus two"),
        ("see the #1 pick", "see the number one pick"),
    ],
)
def test_markdown(text: str, spoken: str) -> None:
    assert normalize_text(text, "en") == spoken


def test_emoji_removed() -> None:
    assert normalize_text("Great 🎉 job 👍🏽 done ✅!", "en") == "Great job done"
    assert normalize_text("Family 👨‍👩‍👧 time", "en") == "Family time"
    assert normalize_word("😀") == ""


@pytest.mark.parametrize(
    ("text", "en", "fr"),
    [
        ("https://www.example.com/path?x=1", "example dot com", "example point com"),
        ("Visit kyutai.org.", "Visit kyutai dot org.", "Visit kyutai point org."),
        (
            "bob.smith@example.org",
            "bob dot smith at example dot org",
            "bob point smith arobase example point org",
        ),
    ],
)
def test_urls_and_emails(text: str, en: str, fr: str) -> None:
    assert normalize_text(text, "en") == en
    assert normalize_text(text, "fr") == fr


def test_display_keeps_digits_but_not_markup() -> None:
    assert clean_display("**20%**,") == "20%,"
    assert clean_display("🎉") == ""
    assert clean_display("here](https://x.com).") == "here."


def test_voice_language() -> None:
    assert language_of_voice("cml-tts/fr/2114_1656_000001-0001.wav") == "fr"
    assert language_of_voice("expresso/ex03-ex01_happy_001_channel1_334s.wav") == "en"


# --- word chunker -------------------------------------------------------------------------


def _feed(pieces: list[str]) -> list[list[str]]:
    chunker = WordChunker()
    out = [chunker.push(p) for p in pieces]
    out.append(chunker.flush())
    return out


def test_words_split_mid_word_are_joined() -> None:
    assert _feed(["Hel", "lo wor", "ld ", "again"]) == [[], ["Hello"], ["world"], [], ["again"]]


def test_punctuation_ended_word_released_immediately() -> None:
    chunker = WordChunker()
    assert chunker.push("Hello") == []
    assert chunker.push(",") == ["Hello,"]
    assert chunker.push(" how are you") == ["how", "are"]
    assert chunker.push("?") == ["you?"]
    assert chunker.flush() == []


def test_all_closing_punctuation_releases() -> None:
    for punct in [".", "!", "?", ";", ":", "…", '"', ")", "»"]:
        chunker = WordChunker()
        assert chunker.push("word" + punct) == ["word" + punct], punct


def test_end_of_segment_releases_the_last_word() -> None:
    chunker = WordChunker()
    assert chunker.push("the end") == ["the"]
    assert chunker.flush() == ["end"]
    assert chunker.flush() == []


def test_decimal_split_across_pieces_is_held() -> None:
    # "3." could continue as "3.14": wait for the next piece
    assert _feed(["It is 3", ".", "14 today."]) == [["It", "is"], [], ["3.14", "today."], []]
    # but a number that really ends the sentence comes out at the end of the segment
    assert _feed(["I have 3."]) == [["I", "have"], ["3."]]


def test_urls_held_until_whitespace() -> None:
    assert _feed(["see www.", "example.", "com now"]) == [["see"], [], ["www.example.com"], ["now"]]


def test_whitespace_only_and_newlines() -> None:
    assert _feed(["  ", "\n\nHi\n", "there"]) == [[], ["Hi"], [], ["there"]]


def test_no_break_space_stays_inside_a_word() -> None:
    assert _feed(["1\u00a0000 euros"]) == [["1\u00a0000"], ["euros"]]
