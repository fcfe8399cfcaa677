"""Every voice a character uses exists in the tiny profile, so the offline stack can speak."""

from catalog.characters import load_characters
from inference.tiny import TINY_VOICES, VOICE_SUFFIX


def test_character_voices_are_in_the_tiny_profile() -> None:
    voices = {v for c in load_characters().characters for v in c.voices()}
    tiny = {v + VOICE_SUFFIX for v in TINY_VOICES}
    assert voices <= tiny, sorted(voices - tiny)
