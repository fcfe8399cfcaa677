"""Kyutai streaming protocol: msgpack maps tagged by `type`. Pure encode/decode and validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

FRAME_SIZE = 1920
SAMPLE_RATE = 24000


class ProtocolError(ValueError):
    """A client message we cannot accept; the text goes back in an `Error` message."""


def pack(msg: dict[str, Any]) -> bytes:
    out = msgpack.packb(msg, use_bin_type=True, use_single_float=True)
    assert isinstance(out, bytes)
    return out


def unpack(data: bytes, *, max_bytes: int) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise ProtocolError(f"message too large ({len(data)} bytes > {max_bytes})")
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise ProtocolError(f"invalid msgpack ({type(exc).__name__})") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("message must be a msgpack map")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("message has no string `type`")
    return msg


# Server -> client helpers.
def ready() -> bytes:
    return pack({"type": "Ready"})


def error(message: str) -> bytes:
    return pack({"type": "Error", "message": message})


def word(text: str, start_time: float) -> dict[str, Any]:
    return {"type": "Word", "text": text, "start_time": float(start_time)}


def end_word(stop_time: float) -> dict[str, Any]:
    return {"type": "EndWord", "stop_time": float(stop_time)}


def step(step_idx: int, prs: list[float], buffered_pcm: int) -> dict[str, Any]:
    return {
        "type": "Step",
        "step_idx": int(step_idx),
        "prs": [float(p) for p in prs],
        "buffered_pcm": int(buffered_pcm),
    }


def marker(marker_id: int) -> dict[str, Any]:
    return {"type": "Marker", "id": int(marker_id)}


def audio(pcm: np.ndarray) -> dict[str, Any]:
    return {"type": "Audio", "pcm": pcm.astype(np.float32).tolist()}


def text(word_text: str, start_s: float, stop_s: float) -> dict[str, Any]:
    return {"type": "Text", "text": word_text, "start_s": float(start_s), "stop_s": float(stop_s)}


# Client -> server parsing.
@dataclass(frozen=True)
class AudioIn:
    pcm: np.ndarray


@dataclass(frozen=True)
class MarkerIn:
    id: int


@dataclass(frozen=True)
class TextIn:
    text: str


@dataclass(frozen=True)
class VoiceIn:
    embeddings: list[float]
    shape: list[int]


@dataclass(frozen=True)
class EosIn:
    pass


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class OggOpusIn:
    data: bytes


@dataclass(frozen=True)
class InitIn:
    pass


def parse_stt(msg: dict[str, Any]) -> AudioIn | MarkerIn | OggOpusIn | InitIn:
    kind = msg["type"]
    if kind == "Audio":
        pcm = msg.get("pcm")
        if not isinstance(pcm, list) or not all(
            isinstance(x, float | int) and not isinstance(x, bool) for x in pcm
        ):
            raise ProtocolError("Audio.pcm must be a list of floats")
        arr = np.asarray(pcm, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise ProtocolError("Audio.pcm contains NaN or infinity")
        return AudioIn(np.clip(arr, -1.0, 1.0))
    if kind == "Marker":
        mid = msg.get("id")
        if not isinstance(mid, int) or isinstance(mid, bool):
            raise ProtocolError("Marker.id must be an integer")
        return MarkerIn(mid)
    if kind == "OggOpus":
        data = msg.get("data")
        if not isinstance(data, bytes):
            raise ProtocolError("OggOpus.data must be bytes (Ogg pages of a 24 kHz Opus stream)")
        return OggOpusIn(data)
    if kind == "Init":  # Kyutai's clients may send it; Ready was sent already
        return InitIn()
    raise ProtocolError(f"unknown message type {kind!r}")


def parse_tts(msg: dict[str, Any]) -> TextIn | VoiceIn | EosIn:
    kind = msg["type"]
    if kind == "Text":
        t = msg.get("text")
        if not isinstance(t, str):
            raise ProtocolError("Text.text must be a string")
        return TextIn(t)
    if kind == "Eos":
        return EosIn()
    if kind == "Voice":
        emb = msg.get("embeddings")
        shape = msg.get("shape")
        if not isinstance(emb, list) or not all(
            isinstance(x, float | int) and not isinstance(x, bool) for x in emb
        ):
            raise ProtocolError("Voice.embeddings must be a list of floats")
        if not isinstance(shape, list) or not all(_is_int(s) for s in shape):
            raise ProtocolError("Voice.shape must be a list of integers")
        return VoiceIn([float(x) for x in emb], [int(s) for s in shape])
    raise ProtocolError(f"unknown message type {kind!r}")


def parse_tts_frame(data: bytes | str, *, max_bytes: int) -> TextIn | VoiceIn | EosIn:
    """TTS accepts plain text frames as text and a single zero byte as end of stream."""
    if isinstance(data, str):
        if len(data) > max_bytes:
            raise ProtocolError("message too large")
        return TextIn(data)
    if data == b"\0":
        return EosIn()
    return parse_tts(unpack(data, max_bytes=max_bytes))


def reframe(buffer: np.ndarray, new: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Append samples and cut whole 1920-sample frames; returns (frames, remainder)."""
    data = np.concatenate([buffer, new]) if buffer.size else new
    n = data.size // FRAME_SIZE
    frames = [data[i * FRAME_SIZE : (i + 1) * FRAME_SIZE] for i in range(n)]
    return frames, data[n * FRAME_SIZE :].copy()
