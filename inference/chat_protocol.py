"""The wire of `/api/chat` (Moshi, full duplex). Pure encode/decode and validation.

Two encodings share the route, chosen by `?format=` as on the TTS route:

- no `format`: **moshi.server's binary protocol**. Every websocket message is one kind byte and
  a payload: `0x00` handshake (server, once, when the slot is ready), `0x01` Ogg/Opus pages
  (both ways, 24 kHz mono), `0x02` a UTF-8 text piece of Moshi's inner monologue (server).
  Kyutai's Rust protocol numbers the other kinds (`0x03` control, `0x04` metadata, `0x05`
  error, `0x06` ping); we send `0x05` + a UTF-8 reason for bad input and accept `0x06`.
- `format=PcmMessagePack`: msgpack maps as on the STT and TTS routes. Client: `Audio {pcm}`,
  `Marker {id}`, `Control {action: hold | release | pad_bias, value}`. Server: `Ready`,
  `Audio {pcm, step_idx}` for every step (silence included), `Text {text, start_s, stop_s,
  step_idx}` on the same step grid, `Marker {id}`, `Error {message}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from inference import protocol
from inference.protocol import AudioIn, MarkerIn, ProtocolError

KIND_HANDSHAKE = 0
KIND_AUDIO = 1
KIND_TEXT = 2
KIND_ERROR = 5
KIND_PING = 6
HANDSHAKE = bytes([KIND_HANDSHAKE])

FRAME_S = protocol.FRAME_SIZE / protocol.SAMPLE_RATE  # 80 ms: one Moshi step
# Bounds of the talkativeness bias (added to the PAD logit; moshi-core's `pad_mult` is the same
# knob in log space). Past ±10 the model is either mute or never pauses.
MAX_PAD_BIAS = 10.0


class ChatFormat(StrEnum):
    BINARY = "moshi"  # moshi.server's protocol: what no `format` means
    PCM_MESSAGEPACK = "PcmMessagePack"


class UnknownChatFormat(ValueError):
    pass


def parse_chat_format(value: str | None) -> ChatFormat:
    if value is None or value == "":
        return ChatFormat.BINARY
    if value == ChatFormat.PCM_MESSAGEPACK.value:
        return ChatFormat.PCM_MESSAGEPACK
    raise UnknownChatFormat(
        f"unknown format {value!r}: leave it out for moshi.server's binary protocol, "
        "or PcmMessagePack"
    )


@dataclass(frozen=True)
class OpusIn:
    data: bytes


@dataclass(frozen=True)
class PingIn:
    pass


@dataclass(frozen=True)
class ControlIn:
    action: str  # hold | release | pad_bias
    value: float = 0.0


ACTIONS = ("hold", "release", "pad_bias")


def parse_binary(data: bytes, *, max_bytes: int) -> OpusIn | PingIn:
    """A client message of the binary protocol."""
    if len(data) > max_bytes:
        raise ProtocolError(f"message too large ({len(data)} bytes > {max_bytes})")
    if not data:
        raise ProtocolError("empty message: expected a kind byte")
    kind = data[0]
    if kind == KIND_AUDIO:
        if len(data) == 1:
            raise ProtocolError("audio message without Ogg/Opus data")
        return OpusIn(bytes(data[1:]))
    if kind == KIND_PING:
        return PingIn()
    raise ProtocolError(f"unexpected message kind {kind}: a client sends 1 (audio) or 6 (ping)")


def parse_msgpack(msg: dict[str, Any]) -> AudioIn | MarkerIn | ControlIn:
    """A client message of the msgpack encoding (already unpacked by `protocol.unpack`)."""
    kind = msg["type"]
    if kind in ("Audio", "Marker"):
        parsed = protocol.parse_stt(msg)
        assert isinstance(parsed, AudioIn | MarkerIn)
        return parsed
    if kind == "Control":
        action = msg.get("action")
        if action not in ACTIONS:
            raise ProtocolError(f"Control.action must be one of {', '.join(ACTIONS)}")
        if action != "pad_bias":
            return ControlIn(str(action))
        value = msg.get("value")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ProtocolError("Control pad_bias needs a numeric value")
        if not math.isfinite(value) or abs(value) > MAX_PAD_BIAS:
            raise ProtocolError(f"Control pad_bias value must be within ±{MAX_PAD_BIAS}")
        return ControlIn("pad_bias", float(value))
    raise ProtocolError(f"unknown message type {kind!r}: Audio, Marker or Control")


def piece_text(piece: str) -> str:
    """SentencePiece marks a word start with `▁`; on the wire it is a space (as moshi.server)."""
    return piece.replace("▁", " ")


# Server -> client, as the engine emits them (the connection encodes per format).
def audio_out(pcm: np.ndarray, step_idx: int) -> dict[str, Any]:
    return {"type": "Audio", "pcm": pcm, "step_idx": int(step_idx)}


def text_out(text: str, step_idx: int) -> dict[str, Any]:
    start = step_idx * FRAME_S
    return {
        "type": "Text",
        "text": text,
        "start_s": round(start, 6),
        "stop_s": round(start + FRAME_S, 6),
        "step_idx": int(step_idx),
    }


def ready(model: str) -> bytes:
    return protocol.pack(
        {
            "type": "Ready",
            "sample_rate": protocol.SAMPLE_RATE,
            "frame_size": protocol.FRAME_SIZE,
            "model": model,
        }
    )


def binary_error(message: str) -> bytes:
    return bytes([KIND_ERROR]) + message.encode()


class ChatEncoder:
    """Turns the engine's messages into one session's frames."""

    def __init__(self, fmt: ChatFormat) -> None:
        self.format = fmt
        self._opus: Any = None
        if fmt is ChatFormat.BINARY:
            import sphn

            self._opus = sphn.OpusStreamWriter(protocol.SAMPLE_RATE)

    def encode(self, msg: dict[str, Any]) -> bytes | None:
        kind = msg["type"]
        if self.format is ChatFormat.PCM_MESSAGEPACK:
            if kind == "Audio":
                msg = {**msg, "pcm": np.asarray(msg["pcm"], dtype=np.float32).tolist()}
            return protocol.pack(msg)
        if kind == "Audio":
            pages = bytes(self._opus.append_pcm(np.asarray(msg["pcm"], dtype=np.float32)))
            return bytes([KIND_AUDIO]) + pages if pages else None
        if kind == "Text":
            return bytes([KIND_TEXT]) + str(msg["text"]).encode()
        if kind == "Error":
            return binary_error(str(msg["message"]))
        return None  # markers have no place in the binary protocol
