"""The TTS output formats of Kyutai's server (`?format=` of /api/tts_streaming).

- `PcmMessagePack`: msgpack messages (`Ready`, `Audio{pcm}`, `Text`, `Error`), what every
  Kyutai client and our plugin ask for.
- `OggOpusMessagePack`: the same messages, with `OggOpus{data}` (Ogg pages) instead of `Audio`.
- `OggOpus` (Kyutai's default when `format` is missing): the bare Ogg/Opus stream, one page per
  binary frame; no messages at all, so no `Ready`, no words, and errors only as close reasons.
- `Pcm`: bare little-endian float32 samples per binary frame, no messages either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from inference import protocol


class OutputFormat(StrEnum):
    PCM = "Pcm"
    PCM_MESSAGEPACK = "PcmMessagePack"
    OGG_OPUS = "OggOpus"
    OGG_OPUS_MESSAGEPACK = "OggOpusMessagePack"

    @property
    def has_messages(self) -> bool:
        return self in (OutputFormat.PCM_MESSAGEPACK, OutputFormat.OGG_OPUS_MESSAGEPACK)


DEFAULT_FORMAT = OutputFormat.OGG_OPUS  # as Kyutai's server


class UnknownFormat(ValueError):
    pass


def parse_format(value: str | None) -> OutputFormat:
    if value is None or value == "":
        return DEFAULT_FORMAT
    try:
        return OutputFormat(value)
    except ValueError:
        known = ", ".join(f.value for f in OutputFormat)
        raise UnknownFormat(f"unknown format {value!r}: one of {known}") from None


@dataclass
class Encoder:
    """Turns the engine's messages into the frames of one session's format."""

    format: OutputFormat
    _opus: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.format in (OutputFormat.OGG_OPUS, OutputFormat.OGG_OPUS_MESSAGEPACK):
            import sphn

            self._opus = sphn.OpusStreamWriter(protocol.SAMPLE_RATE)

    def encode(self, msg: dict[str, Any]) -> bytes | None:
        """The frame to send for `msg`, or None when this format does not carry it."""
        if msg["type"] == "Audio" and self.format is not OutputFormat.PCM_MESSAGEPACK:
            return self._audio(np.asarray(msg["pcm"], dtype=np.float32))
        return protocol.pack(msg) if self.format.has_messages else None

    def _audio(self, pcm: np.ndarray) -> bytes | None:
        if self.format is OutputFormat.PCM:
            return pcm.astype("<f4").tobytes()
        # The first page of the stream carries the Ogg/Opus headers too.
        data = bytes(self._opus.append_pcm(pcm))
        if not data:
            return None
        if self.format is OutputFormat.OGG_OPUS:
            return data
        return protocol.pack({"type": "OggOpus", "data": data})


class OpusInput:
    """A client's Ogg/Opus stream (STT `OggOpus` messages, `/api/chat`'s binary wire), decoded
    as it comes. Corrupt data raises `ProtocolError` and drops the decoder, so the client can
    start a new stream (headers first) on the same session."""

    def __init__(self) -> None:
        self._reader: Any = None

    def decode(self, data: bytes) -> np.ndarray:
        if self._reader is None:
            import sphn

            self._reader = sphn.OpusStreamReader(protocol.SAMPLE_RATE)
        try:
            pcm = np.asarray(self._reader.append_bytes(data), dtype=np.float32)
        except Exception as exc:  # sphn raises plain errors on corrupt pages
            self._reader = None
            raise protocol.ProtocolError(f"bad Ogg/Opus data: {exc}") from exc
        return np.clip(pcm, -1.0, 1.0)
