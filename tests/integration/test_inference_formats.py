"""Kyutai's audio formats, both ways: the four TTS `format=` values (OggOpus when none is
given, as Kyutai's server), an HTTP 400 for an unknown one, and Ogg/Opus STT input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import msgpack
import numpy as np
import pytest

from harness.inference_server import (
    FRAME,
    InferenceServer,
    kyutai_pack,
    kyutai_recv,
    speechlike,
    start_inference_server,
)

pytestmark = pytest.mark.timeout(180)
WORDS = "hello there how are you".split()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    with start_inference_server(tmp_path_factory.mktemp("kyutai-tiny"), batch_size=2) as srv:
        yield srv


def auth(srv: InferenceServer) -> dict[str, str]:
    return {"kyutai-api-key": srv.api_key}


async def speak(srv: InferenceServer, query: str) -> tuple[list[bytes], int | None, str]:
    """Binary frames until the server closes, its close code and reason."""
    frames: list[bytes] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{srv.tts_url}{query}", headers=auth(srv)) as ws,
    ):
        for w in WORDS:
            await ws.send_bytes(kyutai_pack({"type": "Text", "text": w}))
        await ws.send_bytes(kyutai_pack({"type": "Eos"}))
        while True:
            raw = await ws.receive(timeout=30)
            if raw.type != aiohttp.WSMsgType.BINARY:
                return frames, ws.close_code, str(raw.extra or "")
            frames.append(raw.data)


async def test_no_format_is_a_bare_ogg_opus_stream(server: InferenceServer) -> None:
    import sphn

    frames, code, _ = await speak(server, "")
    assert frames and frames[0].startswith(b"OggS") and code == 1000
    reader = sphn.OpusStreamReader(24000)
    pcm = np.concatenate([reader.append_bytes(f) for f in frames])
    assert pcm.size > 10 * FRAME and np.abs(pcm).max() > 0.01


async def test_pcm_is_bare_float32(server: InferenceServer) -> None:
    frames, _, _ = await speak(server, "?format=Pcm")
    assert frames and all(len(f) == 4 * FRAME for f in frames)
    pcm = np.frombuffer(b"".join(frames), dtype="<f4")
    assert np.isfinite(pcm).all() and np.abs(pcm).max() > 0.01


async def test_ogg_opus_messagepack_has_messages_and_pages(server: InferenceServer) -> None:
    frames, _, _ = await speak(server, "?format=OggOpusMessagePack")
    msgs: list[dict[str, Any]] = [msgpack.unpackb(f, raw=False) for f in frames]
    assert msgs[0] == {"type": "Ready"}
    kinds = {m["type"] for m in msgs[1:]}
    assert kinds <= {"OggOpus", "Text"} and "OggOpus" in kinds
    assert [m["text"] for m in msgs if m["type"] == "Text" and m["text"]] == WORDS
    pages = [m["data"] for m in msgs if m["type"] == "OggOpus"]
    assert pages[0].startswith(b"OggS")


async def test_unknown_format_is_http_400_before_the_upgrade(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(f"{server.tts_url}?format=Wav", headers=auth(server))
        assert err.value.status == 400


async def test_unknown_voice_on_a_bare_stream_is_the_close_reason(server: InferenceServer) -> None:
    frames, code, reason = await speak(server, "?voice=no/such.wav")
    assert frames == [] and code == 1008 and "unknown voice" in reason


async def test_ogg_opus_stt_input_is_transcribed_like_pcm(server: InferenceServer) -> None:
    import sphn

    audio = np.asarray(speechlike(3.0, seed=2), dtype=np.float32)
    writer = sphn.OpusStreamWriter(24000)
    pages = [
        writer.append_pcm(audio[i : i + FRAME]) for i in range(0, audio.size - FRAME + 1, FRAME)
    ]
    steps = 0
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.stt_url, headers=auth(server)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        await ws.send_bytes(kyutai_pack({"type": "Init"}))  # as some Kyutai clients do
        for page in pages:
            if page:
                await ws.send_bytes(kyutai_pack({"type": "OggOpus", "data": bytes(page)}))
        await ws.send_bytes(kyutai_pack({"type": "Marker", "id": 3}))
        silence = np.zeros(FRAME * 8, dtype=np.float32).tolist()
        await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": silence}))
        while (m := await kyutai_recv(ws)) is not None:
            assert m["type"] != "Error", m
            if m["type"] == "Step":
                steps += 1
            if m["type"] == "Marker":
                break
    # every decoded frame was stepped, then the model delay
    assert steps >= len(pages) - 1 + 6


def _wav(pcm: np.ndarray, sample_rate: int) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


async def test_post_a_recording_returns_its_words(server: InferenceServer) -> None:
    audio = np.asarray(speechlike(4.0, seed=3), dtype=np.float32)
    url = f"{server.http_url}/api/asr-streaming"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=_wav(audio, 24000), headers=auth(server)) as r:
            assert r.status == 200, await r.text()
            words = await r.json()
        assert words and {m["type"] for m in words} <= {"Word", "EndWord"}
        assert max(m["start_time"] for m in words if m["type"] == "Word") <= 4.0
        # another rate is resampled: 16 kHz gives words too
        src16 = audio[::3][: int(4.0 * 16000)]
        async with http.post(url, data=_wav(src16, 16000), headers=auth(server)) as r:
            assert r.status == 200 and isinstance(await r.json(), list)
        async with http.post(url, data=b"not audio at all", headers=auth(server)) as r:
            assert r.status == 400 and "could not decode" in await r.text()
        async with http.post(url, data=_wav(audio, 24000)) as r:
            assert r.status == 401


async def test_post_text_streams_a_wav(server: InferenceServer) -> None:
    url = f"{server.http_url}/api/tts_streaming"
    body = {"text": "hello there how are you", "voice": "vctk/p225_023.wav"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers=auth(server)) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
            data = await r.read()
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and data[36:40] == b"data"
        pcm = np.frombuffer(data[44:], dtype="<i2")
        assert pcm.size > 10 * FRAME and np.abs(pcm).max() > 100
        async with http.post(
            url, json={"text": "hi", "voice": "no/such.wav"}, headers=auth(server)
        ) as r:
            assert r.status == 404 and "unknown voice" in await r.text()
        async with http.post(url, data=b"{", headers=auth(server)) as r:
            assert r.status == 400


async def test_modules_info_reports_slots(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.http_url}/api/modules_info") as r:
            modules = await r.json()
        by_path = {m["path"]: m for m in modules}
        assert by_path["/api/asr-streaming"]["type"] == "batched_asr"
        assert by_path["/api/tts_streaming"]["type"] == "py"
        assert by_path["/api/asr-streaming"]["total_slots"] == "2"
        async with http.ws_connect(server.stt_url, headers=auth(server)) as ws:
            assert await kyutai_recv(ws) == {"type": "Ready"}
            async with http.get(f"{server.http_url}/api/modules_info") as r:
                used = {m["path"]: m["used_slots"] for m in await r.json()}
            assert used["/api/asr-streaming"] == "1"
        async with http.get(f"{server.http_url}/api/build_info") as r:
            info = await r.json()
        assert {"git_hash", "build_date", "build_timestamp"} <= set(info)
