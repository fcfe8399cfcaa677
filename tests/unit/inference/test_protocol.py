from __future__ import annotations

import msgpack
import numpy as np
import pytest

from inference import protocol


def test_pack_roundtrip_single_floats() -> None:
    data = protocol.pack(protocol.step(3, [0.1, 0.2, 0.3, 0.4], 1920))
    msg = protocol.unpack(data, max_bytes=1000)
    assert msg["type"] == "Step" and msg["step_idx"] == 3
    assert msg["prs"] == pytest.approx([0.1, 0.2, 0.3, 0.4], rel=1e-6)
    # single precision floats: 5 bytes each
    assert b"\xca" in data


def test_parse_audio_and_marker() -> None:
    a = protocol.parse_stt({"type": "Audio", "pcm": [0.5, 2.0, -3, 0]})
    assert isinstance(a, protocol.AudioIn)
    assert a.pcm.dtype == np.float32 and a.pcm.tolist() == [0.5, 1.0, -1.0, 0.0]
    m = protocol.parse_stt({"type": "Marker", "id": 7})
    assert m == protocol.MarkerIn(7)


@pytest.mark.parametrize(
    "msg",
    [
        {"type": "Audio"},
        {"type": "Audio", "pcm": "x"},
        {"type": "Audio", "pcm": [True]},
        {"type": "Audio", "pcm": [float("nan")]},
        {"type": "Marker", "id": 1.5},
        {"type": "Marker", "id": True},
        {"type": "Nope"},
        {"type": "OggOpus", "data": "not bytes"},
    ],
)
def test_parse_stt_rejects(msg: dict) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_stt(msg)


def test_unpack_rejects() -> None:
    with pytest.raises(protocol.ProtocolError, match="too large"):
        protocol.unpack(b"x" * 11, max_bytes=10)
    with pytest.raises(protocol.ProtocolError):
        protocol.unpack(b"\xc1", max_bytes=10)
    with pytest.raises(protocol.ProtocolError):
        protocol.unpack(msgpack.packb([1]), max_bytes=10)
    with pytest.raises(protocol.ProtocolError):
        protocol.unpack(msgpack.packb({"type": 1}), max_bytes=10)


def test_tts_frames() -> None:
    assert protocol.parse_tts_frame("hello there", max_bytes=100) == protocol.TextIn("hello there")
    assert protocol.parse_tts_frame(b"\0", max_bytes=100) == protocol.EosIn()
    assert (
        protocol.parse_tts_frame(protocol.pack({"type": "Eos"}), max_bytes=100) == protocol.EosIn()
    )
    v = protocol.parse_tts({"type": "Voice", "embeddings": [1, 2.0], "shape": [1, 2, 1]})
    assert v == protocol.VoiceIn([1.0, 2.0], [1, 2, 1])
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_tts({"type": "Text", "text": 3})
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_tts({"type": "Voice", "embeddings": [1.0], "shape": [1.0]})


def test_reframe() -> None:
    rest = np.zeros(0, dtype=np.float32)
    frames, rest = protocol.reframe(rest, np.ones(1000, dtype=np.float32))
    assert frames == [] and rest.size == 1000
    frames, rest = protocol.reframe(rest, np.ones(3000, dtype=np.float32))
    assert len(frames) == 2 and all(f.size == 1920 for f in frames) and rest.size == 160
