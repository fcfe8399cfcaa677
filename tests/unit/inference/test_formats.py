from __future__ import annotations

import msgpack
import numpy as np
import pytest

from inference.formats import Encoder, OutputFormat, UnknownFormat, parse_format


def test_parse_format_defaults_to_ogg_opus_like_kyutai() -> None:
    assert parse_format(None) is OutputFormat.OGG_OPUS
    assert parse_format("") is OutputFormat.OGG_OPUS
    assert parse_format("PcmMessagePack") is OutputFormat.PCM_MESSAGEPACK
    with pytest.raises(UnknownFormat, match="one of Pcm, PcmMessagePack, OggOpus"):
        parse_format("wav")


def _tone(n: int = 1920) -> np.ndarray:
    return (0.3 * np.sin(np.arange(n) / 4.0)).astype(np.float32)


def test_bare_formats_carry_audio_only() -> None:
    for fmt in (OutputFormat.PCM, OutputFormat.OGG_OPUS):
        enc = Encoder(fmt)
        for msg in ({"type": "Ready"}, {"type": "Text", "text": "a", "start_s": 0, "stop_s": 1}):
            assert enc.encode(msg) is None
    pcm = _tone()
    raw = Encoder(OutputFormat.PCM).encode({"type": "Audio", "pcm": pcm.tolist()})
    assert raw is not None and np.array_equal(np.frombuffer(raw, dtype="<f4"), pcm)


def test_ogg_opus_stream_decodes_back_to_audio() -> None:
    import sphn

    enc = Encoder(OutputFormat.OGG_OPUS)
    pages = [enc.encode({"type": "Audio", "pcm": _tone().tolist()}) for _ in range(10)]
    assert pages[0] is not None and pages[0].startswith(b"OggS")
    reader = sphn.OpusStreamReader(24000)
    decoded = np.concatenate([reader.append_bytes(p) for p in pages if p])
    assert decoded.size == 10 * 1920 and np.abs(decoded).max() > 0.1


def test_ogg_opus_messagepack_wraps_pages_and_keeps_messages() -> None:
    enc = Encoder(OutputFormat.OGG_OPUS_MESSAGEPACK)
    frame = enc.encode({"type": "Audio", "pcm": _tone().tolist()})
    assert frame is not None
    msg = msgpack.unpackb(frame, raw=False)
    assert msg["type"] == "OggOpus" and msg["data"].startswith(b"OggS")
    text = enc.encode({"type": "Text", "text": "a", "start_s": 0.0, "stop_s": 0.1})
    assert text is not None and msgpack.unpackb(text, raw=False)["text"] == "a"
