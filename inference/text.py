"""Text helpers: TTS input normalisation and streaming word -> moshi `Entry` conversion,
and STT token -> word assembly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_REPLACEMENTS = {"’": "'", "‘": "'", "“": '"', "”": '"', "–": " ", "—": " "}


def normalize_tts_text(text: str) -> str:
    """What Kyutai's server does before tokenising (moshi's script_to_entries does the rest)."""
    for src, dst in _REPLACEMENTS.items():
        text = text.replace(src, dst)
    return text


class EntryBuilder:
    """Turns incoming text chunks (whole words) into moshi TTS entries, one stream per session.

    The first word of a session carries the main-speaker token for multi-speaker models, exactly
    as `script_to_entries` would for a whole script.
    """

    def __init__(
        self,
        tokenizer: Any,
        token_ids: Any,
        frame_rate: float,
        *,
        multi_speaker: bool,
        padding_between: int = 1,
    ) -> None:
        self._tokenizer = tokenizer
        self._token_ids = token_ids
        self._frame_rate = frame_rate
        self._multi_speaker = multi_speaker
        self._padding_between = padding_between
        self._first = True

    def entries(self, chunk: str) -> list[Any]:
        from moshi.models.tts import script_to_entries

        chunk = normalize_tts_text(chunk).strip()
        if not chunk:
            return []
        out = script_to_entries(
            self._tokenizer,
            self._token_ids,
            self._frame_rate,
            [chunk],
            multi_speaker=False,
            padding_between=self._padding_between,
        )
        if self._first and self._multi_speaker:
            for entry in out:
                if entry.tokens:
                    entry.tokens.insert(0, self._token_ids.main)
                    self._first = False
                    break
        elif out:
            self._first = False
        return out


@dataclass
class WordAssembler:
    """Greedy STT text tokens -> words. Ids > 3 are word pieces; 0 (word start) or 3 (padding)
    closes the current word."""

    decode: Callable[[list[int]], str]
    pad_id: int = 3
    boundary_id: int = 0
    _pieces: list[int] = field(default_factory=list)
    _start: float = 0.0

    def push(self, token: int, time_s: float) -> tuple[str, float, float] | None:
        """Feed one token at `time_s`; returns (word, start, stop) when a word completes."""
        if token in (self.pad_id, self.boundary_id):
            return self.flush(time_s)
        if token > self.pad_id:
            if not self._pieces:
                self._start = time_s
            self._pieces.append(token)
        return None

    def flush(self, time_s: float) -> tuple[str, float, float] | None:
        if not self._pieces:
            return None
        word = self.decode(self._pieces).strip()
        self._pieces = []
        if not word:
            return None
        return word, self._start, time_s
