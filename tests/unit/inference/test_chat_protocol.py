"""/api/chat's two encodings, and a Moshi session's input queue (drops, markers, controls)."""

from __future__ import annotations

import asyncio
import math

import msgpack
import numpy as np
import pytest

from inference import chat_protocol as cp
from inference.moshi_engine import MoshiSession
from inference.protocol import AudioIn, MarkerIn, ProtocolError, unpack

FRAME = 1920


def test_format_default_is_moshi_binary_protocol() -> None:
    assert cp.parse_chat_format(None) is cp.ChatFormat.BINARY
    assert cp.parse_chat_format("") is cp.ChatFormat.BINARY
    assert cp.parse_chat_format("PcmMessagePack") is cp.ChatFormat.PCM_MESSAGEPACK
    with pytest.raises(cp.UnknownChatFormat, match="OggOpus"):
        cp.parse_chat_format("OggOpus")


def test_binary_parse() -> None:
    assert cp.parse_binary(b"\x01abc", max_bytes=100) == cp.OpusIn(b"abc")
    assert cp.parse_binary(b"\x06", max_bytes=100) == cp.PingIn()
    for bad, why in (
        (b"", "empty"),
        (b"\x01", "without"),
        (b"\x02hello", "kind 2"),
        (b"\x00", "kind 0"),
        (b"\xff", "kind 255"),
        (b"\x01" + b"x" * 200, "too large"),
    ):
        with pytest.raises(ProtocolError, match=why):
            cp.parse_binary(bad, max_bytes=100)


def _m(msg: dict[str, object]) -> dict[str, object]:
    return unpack(msgpack.packb(msg), max_bytes=1 << 20)


def test_msgpack_parse() -> None:
    audio = cp.parse_msgpack(_m({"type": "Audio", "pcm": [0.0, 0.5, 2.0]}))
    assert isinstance(audio, AudioIn) and audio.pcm.tolist() == [0.0, 0.5, 1.0]
    assert cp.parse_msgpack(_m({"type": "Marker", "id": 4})) == MarkerIn(4)
    assert cp.parse_msgpack(_m({"type": "Control", "action": "hold"})) == cp.ControlIn("hold")
    assert cp.parse_msgpack(_m({"type": "Control", "action": "pad_bias", "value": -2})) == (
        cp.ControlIn("pad_bias", -2.0)
    )
    for bad, why in (
        ({"type": "Control", "action": "shout"}, "action"),
        ({"type": "Control", "action": "pad_bias"}, "numeric"),
        ({"type": "Control", "action": "pad_bias", "value": True}, "numeric"),
        ({"type": "Control", "action": "pad_bias", "value": 11.0}, "within"),
        ({"type": "Control", "action": "pad_bias", "value": math.inf}, "within"),
        ({"type": "Text", "text": "hi"}, "unknown message type"),
        ({"type": "Audio", "pcm": "loud"}, "list of floats"),
        ({"type": "Marker", "id": "x"}, "integer"),
    ):
        with pytest.raises(ProtocolError, match=why):
            cp.parse_msgpack(_m(bad))


def test_encoders() -> None:
    pcm = np.full(FRAME, 0.25, dtype=np.float32)
    text = cp.text_out(" hello", 3)
    assert text["start_s"] == pytest.approx(0.24) and text["stop_s"] == pytest.approx(0.32)
    mp = cp.ChatEncoder(cp.ChatFormat.PCM_MESSAGEPACK)
    frame = msgpack.unpackb(mp.encode(cp.audio_out(pcm, 7)))  # type: ignore[arg-type]
    assert frame["type"] == "Audio" and frame["step_idx"] == 7 and len(frame["pcm"]) == FRAME
    assert msgpack.unpackb(mp.encode({"type": "Marker", "id": 2}))["id"] == 2  # type: ignore[arg-type]
    binary = cp.ChatEncoder(cp.ChatFormat.BINARY)
    first = binary.encode(cp.audio_out(pcm, 0))
    assert first is not None and first[:1] == b"\x01" and first[1:5] == b"OggS"
    assert binary.encode(text) == b"\x02 hello"
    assert binary.encode({"type": "Marker", "id": 1}) is None
    assert binary.encode({"type": "Error", "message": "no"}) == b"\x05no"
    assert cp.piece_text("\u2581hello") == " hello"


def _session() -> MoshiSession:
    return MoshiSession(0, asyncio.new_event_loop())


def _frames(n: int, start: int = 0) -> np.ndarray:
    return np.concatenate([np.full(FRAME, float(start + i) / 100, np.float32) for i in range(n)])


def test_queue_drops_oldest_beyond_the_limit() -> None:
    s = _session()
    s.push_audio(_frames(10))  # 0.8 s at once
    markers: list[int] = []
    frame, dropped = s.take_frame(3, markers)
    assert dropped == 7 and frame is not None
    assert frame[0] == pytest.approx(0.07)  # the oldest of the three newest frames
    assert s.queued_frames == 2


def test_queue_takes_in_order_and_reports_empty() -> None:
    s = _session()
    s.push_audio(_frames(2)[: FRAME + 100])  # one frame and a partial one
    frame, dropped = s.take_frame(3, [])
    assert dropped == 0 and frame is not None and frame[0] == 0.0
    assert s.take_frame(3, []) == (None, 0)
    s.push_audio(np.zeros(FRAME - 100, np.float32))  # completes the second frame
    frame, _ = s.take_frame(3, [])
    assert frame is not None and frame[0] == pytest.approx(0.01)


def test_markers_follow_their_audio() -> None:
    s = _session()
    s.push_marker(1)  # before any audio: due at once
    s.push_audio(_frames(2))
    s.push_marker(2)
    s.push_audio(_frames(1, 2))
    got: list[int] = []
    s.take_frame(3, got)
    assert got == [1]
    s.take_frame(3, got)  # the frame the marker follows
    assert got == [1, 2]
    s.push_audio(_frames(6, 3))
    s.push_marker(3)
    s.take_frame(3, got)  # frames before the marker dropped or taken; marker still behind 2
    assert got == [1, 2]
    s.take_frame(3, got)
    s.take_frame(3, got)
    assert got == [1, 2, 3]


def test_a_standing_queue_is_trimmed_a_jittery_one_kept() -> None:
    s = _session()
    s.push_audio(_frames(2))  # one frame too many, e.g. the first one waited behind the lead
    dropped = 0
    for k in range(25):
        s.push_audio(_frames(1, 2 + k))  # then exactly one frame per step
        dropped += s.take_frame(3, [], trim_window=25)[1]
    assert dropped == 1 and s.queued_frames == 1  # 80 ms less delay from here on
    jittery = _session()
    dropped = 0
    for k in range(50):  # bursts of two every other step: the queue empties in between
        if k % 2 == 0:
            jittery.push_audio(_frames(2, 2 * k))
        dropped += jittery.take_frame(3, [], trim_window=25)[1]
    assert dropped == 0


def test_controls() -> None:
    s = _session()
    s.control("hold")
    assert s.held
    s.control("pad_bias", 2.5)
    s.control("release")
    assert not s.held and s.pad_bias == 2.5
