"""Bad input never takes the server down: every bad message gets a clear `Error`, and a normal
session works afterwards. NaN audio or voices are refused before they can reach the batch."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgpack
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

MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    with start_inference_server(
        tmp_path_factory.mktemp("kyutai-tiny"),
        batch_size=1,
        env={"KYUTAI_MAX_MESSAGE_BYTES": str(MAX_BYTES)},
    ) as srv:
        yield srv


def auth(srv: InferenceServer) -> dict[str, str]:
    return {"kyutai-api-key": srv.api_key}


NAN_AUDIO = kyutai_pack({"type": "Audio", "pcm": [0.1] * 100 + [math.nan] + [0.1] * 100})
INF_AUDIO = kyutai_pack({"type": "Audio", "pcm": [math.inf, -math.inf]})
COMMON: list[tuple[str, bytes]] = [
    ("not msgpack", b"\xc1\xff\x00 garbage"),
    ("truncated msgpack", kyutai_pack({"type": "Audio", "pcm": [0.0] * 10})[:-7]),
    ("msgpack array", msgpack.packb([1, 2, 3])),
    ("msgpack int", msgpack.packb(7)),
    ("no type", kyutai_pack({"pcm": [0.0]})),
    ("type not a string", kyutai_pack({"type": 3})),
    ("non-string keys", msgpack.packb({1: "Audio", "type": "Audio"})),
    ("unknown type", kyutai_pack({"type": "Teleport", "to": "mars"})),
    ("oversized", kyutai_pack({"type": "Audio", "pcm": [0.0] * (MAX_BYTES // 5 + 100)})),
]
STT_BAD: list[tuple[str, bytes | str]] = [
    *COMMON,
    ("pcm is a string", kyutai_pack({"type": "Audio", "pcm": "loud"})),
    ("pcm holds a string", kyutai_pack({"type": "Audio", "pcm": [0.1, "x"]})),
    ("pcm holds a bool", kyutai_pack({"type": "Audio", "pcm": [True]})),
    ("pcm missing", kyutai_pack({"type": "Audio"})),
    ("pcm nested", kyutai_pack({"type": "Audio", "pcm": [[0.1]]})),
    ("NaN audio", NAN_AUDIO),
    ("infinite audio", INF_AUDIO),
    ("marker id string", kyutai_pack({"type": "Marker", "id": "seven"})),
    ("marker id float", kyutai_pack({"type": "Marker", "id": 1.5})),
    ("text frame", "hello"),
    ("tts message on stt", kyutai_pack({"type": "Text", "text": "hi"})),
]
TTS_BAD: list[tuple[str, bytes | str]] = [
    *COMMON,
    ("text not a string", kyutai_pack({"type": "Text", "text": 12})),
    ("text missing", kyutai_pack({"type": "Text"})),
    ("oversized text frame", "x" * (MAX_BYTES + 10)),
    (
        "voice count mismatch",
        kyutai_pack({"type": "Voice", "embeddings": [0.0] * 3, "shape": [1, 2, 2]}),
    ),
    ("voice bad rank", kyutai_pack({"type": "Voice", "embeddings": [0.0] * 4, "shape": [4]})),
    (
        "voice wrong dim",
        kyutai_pack({"type": "Voice", "embeddings": [0.0] * 64, "shape": [1, 8, 8]}),
    ),
    (
        "voice NaN",
        kyutai_pack({"type": "Voice", "embeddings": [math.nan] * 512, "shape": [1, 512, 1]}),
    ),
    (
        "voice embeddings string",
        kyutai_pack({"type": "Voice", "embeddings": "x", "shape": [1, 512, 1]}),
    ),
    (
        "voice shape floats",
        kyutai_pack({"type": "Voice", "embeddings": [0.0], "shape": [1.0, 1.0, 1.0]}),
    ),
    ("audio on tts", kyutai_pack({"type": "Audio", "pcm": [0.0]})),
]


async def send(ws: aiohttp.ClientWebSocketResponse, payload: bytes | str) -> None:
    if isinstance(payload, str):
        await ws.send_str(payload)
    else:
        await ws.send_bytes(payload)


async def expect_error(ws: aiohttp.ClientWebSocketResponse, name: str) -> None:
    m = await kyutai_recv(ws)
    assert m is not None, f"{name}: server closed instead of answering"
    assert m["type"] == "Error", (name, m)
    message = m["message"]
    assert isinstance(message, str) and message, (name, m)


async def normal_stt(srv: InferenceServer) -> list[dict[str, Any]]:
    """A full well-formed STT session; returns what came back before the marker."""
    out: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(srv.stt_url, headers=auth(srv)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        audio = speechlike(1.5, seed=2)
        for i in range(0, len(audio), FRAME * 4):  # under the server's message size limit
            await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": audio[i : i + FRAME * 4]}))
        await ws.send_bytes(kyutai_pack({"type": "Marker", "id": 5}))
        for _ in range(2):
            await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": [0.0] * (FRAME * 4)}))
        while (m := await kyutai_recv(ws)) is not None and m["type"] != "Marker":
            assert m["type"] != "Error", m
            out.append(m)
        assert m == {"type": "Marker", "id": 5}
    steps = [s for s in out if s["type"] == "Step"]
    assert len(steps) == math.ceil(1.5 * 24000 / FRAME) + 6
    assert all(math.isfinite(p) for s in steps for p in s["prs"])  # type: ignore[attr-defined]
    return out


def assert_same_transcription(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """What the model computed, message for message: words, their times, step indices and
    pause probabilities. `buffered_pcm` is left out: it counts the audio still queued when a
    step ran, which depends on how fast the client's messages arrived, not on the model."""

    def model_view(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if k != "buffered_pcm"} for m in msgs]

    got_view, want_view = model_view(got), model_view(want)
    for m in got_view:
        if m["type"] == "Step":  # finite, so a NaN reaching the slot's state cannot hide
            assert all(math.isfinite(p) for p in m["prs"]), m
    assert got_view == want_view


async def normal_tts(srv: InferenceServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(srv.tts_msgpack(), headers=auth(srv)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        for w in "hello world again".split():
            await ws.send_bytes(kyutai_pack({"type": "Text", "text": w}))
        await ws.send_bytes(kyutai_pack({"type": "Eos"}))
        frames = 0
        while (m := await kyutai_recv(ws)) is not None:
            assert m["type"] in ("Audio", "Text"), m
            if m["type"] == "Audio":
                pcm = m["pcm"]
                assert isinstance(pcm, list) and len(pcm) == FRAME
                assert all(math.isfinite(x) for x in pcm)
                frames += 1
        assert frames > 5


async def test_stt_bad_messages_then_normal_session(server: InferenceServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.stt_url, headers=auth(server), max_msg_size=0) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        for name, payload in STT_BAD:
            await send(ws, payload)
            await expect_error(ws, name)
        # The same session still transcribes after all that.
        await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": [0.0] * FRAME}))
        m = await kyutai_recv(ws)
        assert m is not None and m["type"] == "Step"
    await normal_stt(server)


async def test_tts_bad_messages_then_normal_session(server: InferenceServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.tts_msgpack(), headers=auth(server), max_msg_size=0) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        for name, payload in TTS_BAD:
            await send(ws, payload)
            await expect_error(ws, name)
        # The session still speaks.
        for w in "still works fine".split():
            await ws.send_bytes(kyutai_pack({"type": "Text", "text": w}))
        await ws.send_bytes(kyutai_pack({"type": "Eos"}))
        kinds = set()
        while (m := await kyutai_recv(ws)) is not None:
            kinds.add(m["type"])
        assert kinds == {"Audio", "Text"}
    await normal_tts(server)


async def test_nan_audio_does_not_poison_later_sessions(server: InferenceServer) -> None:
    reference = await normal_stt(server)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.stt_url, headers=auth(server)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        for payload in (NAN_AUDIO, INF_AUDIO):
            await ws.send_bytes(payload)
            await expect_error(ws, "non-finite audio")
        await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": [0.0] * (FRAME * 3)}))
        for _ in range(3):
            m = await kyutai_recv(ws)
            assert m is not None and m["type"] == "Step"
            assert all(math.isfinite(p) for p in m["prs"])  # type: ignore[attr-defined]
    # Same input, same output: no state from the bad session leaked into the slot.
    assert_same_transcription(await normal_stt(server), reference)


async def test_far_too_large_message_closes_only_that_socket(server: InferenceServer) -> None:
    """Beyond the websocket layer's own limit the socket is closed (1009), the server lives."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.stt_url, headers=auth(server)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        await ws.send_bytes(b"\x00" * (MAX_BYTES * 3))
        while (m := await kyutai_recv(ws)) is not None:
            assert m["type"] == "Error", m
        assert ws.close_code in (1009, 1006, 1011)
    await normal_stt(server)


async def test_unknown_voice_bad_format_and_auth(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http:
        for query in ("?voice=no/such.wav", "?voice=../../etc/passwd"):
            async with http.ws_connect(server.tts_msgpack(query), headers=auth(server)) as ws:
                await expect_error(ws, query)
                assert await kyutai_recv(ws) is None
        # an unknown format is refused before the upgrade, as Kyutai's server does
        with pytest.raises(aiohttp.WSServerHandshakeError) as bad_format:
            await http.ws_connect(f"{server.tts_url}?format=Mp3", headers=auth(server))
        assert bad_format.value.status == 400
        for url in (server.stt_url, server.tts_url):
            for hdrs in ({}, {"kyutai-api-key": "wrong"}):
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await http.ws_connect(url, headers=hdrs)
                assert err.value.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(f"{url}?auth_id=wrong")
            assert err.value.status == 401
    await normal_tts(server)


async def test_full_server_says_no_free_channels(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http:
        for url in (server.stt_url, server.tts_msgpack()):
            async with http.ws_connect(url, headers=auth(server)) as held:
                assert await kyutai_recv(held) == {"type": "Ready"}
                async with http.ws_connect(url, headers=auth(server)) as ws:
                    assert await kyutai_recv(ws) == {"type": "Error", "message": "no free channels"}
                    assert await kyutai_recv(ws) is None
    await normal_stt(server)
    await normal_tts(server)
