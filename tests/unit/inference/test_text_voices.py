from __future__ import annotations

from pathlib import Path

import pytest

from inference.text import WordAssembler, normalize_tts_text
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


def test_word_assembler() -> None:
    wa = WordAssembler(decode=lambda ids: "".join(chr(96 + i - 3) for i in ids))
    out = [wa.push(t, i * 0.08) for i, t in enumerate([3, 4, 5, 0, 6, 3, 3])]
    words = [o for o in out if o is not None]
    assert words == [("ab", 0.08, 0.24), ("c", 0.32, 0.40)]


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
