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


@dataclass(frozen=True)
class WordOut:
    text: str
    start: float


@dataclass(frozen=True)
class EndWordOut:
    stop: float


@dataclass
class WordAssembler:
    """Greedy STT text tokens -> `Word` / `EndWord`, with the semantics of Kyutai's Rust server.

    Every token but 0 (word start) and 3 (padding) is a word piece. A 0 or 3 after pieces
    completes a word, which starts at the 0 that opened it. A word's end is a 0 only: a word
    that padding follows is ended when the next word starts (clients estimate its end from the
    step it was completed on, see the plugin's turn tracker). Kyutai's models open every word
    with a 0 right before its pieces; a word that comes without one, or after a 0 that padding
    followed (the tiny test model does both), starts at its first piece, where Kyutai's server
    would date it to the last 0 however long ago that was.
    """

    decode: Callable[[list[int]], str]
    pad_id: int = 3
    boundary_id: int = 0
    _pieces: list[int] = field(default_factory=list)
    _start: float = 0.0
    _opened: float | None = None  # time of a 0 not yet followed by a word
    _unended: bool = False

    def push(self, token: int, time_s: float) -> list[WordOut | EndWordOut]:
        """Feed one token at `time_s`; returns what completed with it."""
        out: list[WordOut | EndWordOut] = []
        if token == self.pad_id and not self._pieces:
            self._opened = None  # a 0 followed by padding opened nothing
        if token in (self.pad_id, self.boundary_id):
            if self._pieces:
                word = self.decode(self._pieces).strip()
                self._pieces = []
                if word:
                    out.append(WordOut(word, self._start))
                    self._unended = True
        else:
            if not self._pieces:
                self._start = self._opened if self._opened is not None else time_s
                self._opened = None
            self._pieces.append(token)
        if token == self.boundary_id:
            if self._unended:
                self._unended = False
                out.append(EndWordOut(time_s))
            self._opened = time_s
        return out
