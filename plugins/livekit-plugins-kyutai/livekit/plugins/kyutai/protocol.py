"""Messages of Kyutai's moshi-server websocket protocol (msgpack maps tagged by ``type``).

Pure encoding and decoding, no I/O, so that the plugins and the tests share one definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np

if TYPE_CHECKING:
    from livekit import rtc

NO_FREE_CHANNELS = "no free channels"


class ProtocolError(ValueError):
    """A frame that is not a message of the protocol."""


@dataclass(frozen=True)
class Ready:
    pass


@dataclass(frozen=True)
class Word:
    text: str
    start_time: float


@dataclass(frozen=True)
class EndWord:
    stop_time: float


@dataclass(frozen=True)
class Step:
    step_idx: int
    prs: tuple[float, ...]
    buffered_pcm: int = 0


@dataclass(frozen=True)
class Marker:
    id: int


@dataclass(frozen=True)
class Error:
    message: str

    @property
    def at_capacity(self) -> bool:
        return NO_FREE_CHANNELS in self.message.lower()

    @property
    def bad_voice(self) -> bool:
        """The voice asked for does not exist there: asking again cannot help."""
        m = self.message.lower()
        return any(p in m for p in ("unknown voice", "invalid voice", "voice name is empty"))


@dataclass(frozen=True)
class Audio:
    pcm: np.ndarray  # float32, mono, 24 kHz
    step_idx: int | None = None  # Moshi (/api/chat): the output step, every 80 ms


@dataclass(frozen=True)
class Text:
    """A word spoken by the TTS with its place on the audio timeline (TTS → client)."""

    text: str
    start_s: float
    stop_s: float
    step_idx: int | None = None  # Moshi: the step whose audio this piece is aligned with


@dataclass(frozen=True)
class Unknown:
    type: str


Message = Ready | Word | EndWord | Step | Marker | Error | Audio | Text | Unknown


def _pack(obj: dict[str, Any]) -> bytes:
    return msgpack.packb(obj, use_single_float=True, use_bin_type=True)


def encode_audio(pcm: np.ndarray | Sequence[float]) -> bytes:
    """``Audio`` with float32 samples in [-1, 1]."""
    arr = np.asarray(pcm, dtype=np.float32)
    return _pack({"type": "Audio", "pcm": arr.tolist()})


def encode_marker(marker_id: int) -> bytes:
    return _pack({"type": "Marker", "id": int(marker_id)})


def encode_text(text: str) -> bytes:
    return _pack({"type": "Text", "text": text})


def encode_eos() -> bytes:
    return _pack({"type": "Eos"})


def encode_control(action: str, value: float | None = None) -> bytes:
    """Moshi's per-session controls: ``hold``, ``release``, ``pad_bias`` (with ``value``)."""
    msg: dict[str, Any] = {"type": "Control", "action": action}
    if value is not None:
        msg["value"] = float(value)
    return _pack(msg)


def decode(data: bytes) -> Message:
    """Decode one binary frame; raises ProtocolError on anything that is not a tagged map."""
    try:
        obj = msgpack.unpackb(data, raw=False)
    except Exception as e:
        raise ProtocolError(f"undecodable frame: {e}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(f"untagged frame: {type(obj).__name__}")
    kind: str = obj["type"]
    try:
        if kind == "Ready":
            return Ready()
        if kind == "Word":
            return Word(text=str(obj.get("text", "")), start_time=float(obj.get("start_time", 0)))
        if kind == "EndWord":
            return EndWord(stop_time=float(obj["stop_time"]))
        if kind == "Step":
            return Step(
                step_idx=int(obj["step_idx"]),
                prs=tuple(float(p) for p in obj.get("prs") or ()),
                buffered_pcm=int(obj.get("buffered_pcm", 0)),
            )
        if kind == "Marker":
            return Marker(id=int(obj["id"]))
        if kind == "Error":
            return Error(message=str(obj.get("message", "")))
        if kind == "Audio":
            step = obj.get("step_idx")
            return Audio(
                pcm=np.asarray(obj.get("pcm") or [], dtype=np.float32),
                step_idx=None if step is None else int(step),
            )
        if kind == "Text":
            return Text(
                text=str(obj.get("text", "")),
                start_s=float(obj.get("start_s", 0.0)),
                stop_s=float(obj.get("stop_s", 0.0)),
                step_idx=None if obj.get("step_idx") is None else int(obj["step_idx"]),
            )
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"malformed {kind} message: {e}") from e
    return Unknown(type=kind)


def float_to_pcm16(pcm: np.ndarray) -> bytes:
    """float32 [-1, 1] → little-endian int16 bytes, as the framework's audio frames carry."""
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def pcm16_to_float(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def frame_to_float(frame: rtc.AudioFrame) -> np.ndarray:
    """A framework audio frame (int16, interleaved) as mono float32."""
    pcm = pcm16_to_float(frame.data.cast("B"))
    if frame.num_channels > 1:
        pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1)
    return pcm.astype(np.float32, copy=False)
