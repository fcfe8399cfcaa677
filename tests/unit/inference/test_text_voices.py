from __future__ import annotations

import pytest

from inference.text import WordAssembler, normalize_tts_text
from inference.voices import UnknownVoice, embedding_from_message, normalize_voice_name


def test_normalize_tts_text() -> None:
    assert normalize_tts_text("it’s – fine") == "it's   fine"


def test_word_assembler() -> None:
    wa = WordAssembler(decode=lambda ids: "".join(chr(96 + i - 3) for i in ids))
    out = [wa.push(t, i * 0.08) for i, t in enumerate([3, 4, 5, 0, 6, 3, 3])]
    words = [o for o in out if o is not None]
    assert words == [("ab", 0.08, 0.24), ("c", 0.32, 0.40)]


def test_voice_names() -> None:
    assert normalize_voice_name("a/b.wav.1e68beda@240.safetensors") == "a/b.wav"
    for bad in ("", "../x", "/etc/passwd", "a//b", "a\\b"):
        with pytest.raises(UnknownVoice):
            normalize_voice_name(bad)
    assert embedding_from_message([0.0] * 6, [1, 3, 2]).shape == (1, 3, 2)
    with pytest.raises(UnknownVoice):
        embedding_from_message([0.0] * 5, [1, 3, 2])
