from __future__ import annotations

from pathlib import Path

import pytest

from inference.text import EndWordOut, WordAssembler, WordOut, normalize_tts_text
from inference.voices import (
    UnknownVoice,
    embedding_from_message,
    normalize_voice_name,
    resolve_voice,
    voice_suffix,
)

SUFFIX = ".1e68beda@240.safetensors"


def test_normalize_tts_text() -> None:
    assert normalize_tts_text("it’s – fine") == "it's   fine"


def test_word_assembler_follows_kyutai_rules() -> None:
    wa = WordAssembler(decode=lambda ids: "".join(chr(96 + i - 3) for i in ids))
    # 0 a b 0 c 3 3 0 d 0: "ab" ends at a 0 (Word + EndWord together), "c" ends with padding
    # (its EndWord waits for the next 0), pieces 1 and 2 are kept like any other piece.
    tokens = [0, 4, 5, 0, 6, 3, 3, 0, 7, 1, 0]
    out = [(i, o) for i, t in enumerate(tokens) for o in wa.push(t, i * 0.08)]
    assert out == [
        (3, WordOut("ab", 0.0)),
        (3, EndWordOut(0.24)),
        (5, WordOut("c", 0.24)),
        (7, EndWordOut(0.56)),
        (10, WordOut("d" + chr(96 + 1 - 3), 0.56)),
        (10, EndWordOut(0.8)),
    ]


def test_a_word_without_its_opening_zero_starts_at_its_first_piece() -> None:
    wa = WordAssembler(decode=lambda ids: "".join(chr(96 + i - 3) for i in ids))
    # 0 a 3 3 3 b c 3: "bc" has no 0 before it; its start is not the 0 of long ago
    tokens = [0, 4, 3, 3, 3, 5, 6, 3]
    out = [(i, o) for i, t in enumerate(tokens) for o in wa.push(t, i * 0.08)]
    assert out == [(2, WordOut("a", 0.0)), (7, WordOut("bc", 0.4))]
    # a 0 that padding follows ends "bc" but opens nothing: "d" starts at its own piece
    out = [(i, o) for i, t in enumerate([0, 3, 3, 7, 3], start=8) for o in wa.push(t, i * 0.08)]
    assert out == [(8, EndWordOut(0.64)), (12, WordOut("d", 0.88))]


def test_voice_names() -> None:
    assert normalize_voice_name("a/b.wav.1e68beda@240.safetensors", SUFFIX) == "a/b.wav"
    for bad in ("", "../x", "/etc/passwd", "a//b", "a\\b"):
        with pytest.raises(UnknownVoice):
            normalize_voice_name(bad, SUFFIX)
    assert embedding_from_message([0.0] * 6, [1, 3, 2]).shape == (1, 3, 2)
    with pytest.raises(UnknownVoice):
        embedding_from_message([0.0] * 5, [1, 3, 2])


def test_voice_suffix_comes_from_the_model_id(tmp_path: Path) -> None:
    assert voice_suffix({"sig": "1e68beda", "epoch": 240}) == SUFFIX
    other = voice_suffix({"sig": "abc123", "epoch": 7})
    assert other == ".abc123@7.safetensors"
    (tmp_path / "v.wav.abc123@7.safetensors").write_bytes(b"")
    found = resolve_voice("v.wav", voice_dir=tmp_path, voice_repo="r", suffix=other)
    assert found.name == "v.wav.abc123@7.safetensors"
    # A file made for another model is not taken for this one.
    (tmp_path / ("w.wav" + SUFFIX)).write_bytes(b"")
    with pytest.raises(UnknownVoice):
        resolve_voice("w.wav", voice_dir=tmp_path, voice_repo="r", suffix=other)
    with pytest.raises(ValueError, match="model_id"):
        voice_suffix({})
