"""The real inference server (tiny random models on CPU) driven over websockets."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import numpy as np
import pytest

from harness.inference_server import InferenceServer, start_inference_server

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]

FRAME = 1920
TIMEOUT = 30.0


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kyutai-tiny")


@pytest.fixture(scope="module")
def server(tiny_cache: Path) -> Iterator[InferenceServer]:
    with start_inference_server(tiny_cache, batch_size=2) as srv:
        yield srv


def pack(msg: dict[str, Any]) -> bytes:
    return msgpack.packb(msg, use_bin_type=True, use_single_float=True)


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
    """Next msgpack message, or None when the server closed."""
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
        return None
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    out = msgpack.unpackb(msg.data, raw=False)
    assert isinstance(out, dict)
    return out


def headers(srv: InferenceServer) -> dict[str, str]:
    return {"kyutai-api-key": srv.api_key}


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 24000)
    t = np.arange(n) / 24000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    sig = 0.3 * env * np.sin(2 * np.pi * (200 + 100 * np.sin(t)) * t) + 0.05 * rng.standard_normal(
        n
    )
    return sig.astype(np.float32)


async def test_stt_session(server: InferenceServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.stt_url, headers=headers(server)) as ws,
    ):
        assert await recv(ws) == {"type": "Ready"}
        audio = speechlike(3.0)
        # Uneven chunk sizes: the server must re-frame them.
        for i in range(0, audio.size, 1000):
            await ws.send_bytes(pack({"type": "Audio", "pcm": audio[i : i + 1000].tolist()}))
        await ws.send_bytes(pack({"type": "Marker", "id": 42}))
        silence = np.zeros(FRAME, dtype=np.float32).tolist()
        steps: list[dict[str, Any]] = []
        words: list[dict[str, Any]] = []
        end_words = 0
        marker_seen = False
        # Flush: keep pushing silence until the marker comes back (as the protocol requires).
        for _ in range(40):
            await ws.send_bytes(pack({"type": "Audio", "pcm": silence}))
        while not marker_seen:
            m = await recv(ws)
            assert m is not None
            if m["type"] == "Step":
                steps.append(m)
            elif m["type"] == "Word":
                words.append(m)
            elif m["type"] == "EndWord":
                end_words += 1
            elif m["type"] == "Marker":
                assert m["id"] == 42
                marker_seen = True
        n_audio_frames = -(-audio.size // FRAME)
        # The marker comes back only after the audio before it plus the model delay (6 frames).
        assert len(steps) >= n_audio_frames + 6
        assert all(len(s["prs"]) == 4 for s in steps)
        assert all(0.0 <= p <= 1.0 for s in steps for p in s["prs"])
        assert [s["step_idx"] for s in steps] == list(range(len(steps)))
        for w in words:
            assert isinstance(w["text"], str) and w["start_time"] >= 0.0
        # Kyutai's semantics: a word that padding follows is ended when the next word starts,
        # so the last word of an utterance may have no EndWord yet.
        assert len(words) - 1 <= end_words <= len(words)


async def tts_run(
    server: InferenceServer, text: str, query: str = ""
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.tts_msgpack(query), headers=headers(server)) as ws,
    ):
        assert await recv(ws) == {"type": "Ready"}
        for word in text.split():
            await ws.send_bytes(pack({"type": "Text", "text": word}))
        await ws.send_bytes(pack({"type": "Eos"}))
        frames: list[np.ndarray] = []
        texts: list[dict[str, Any]] = []
        while (m := await recv(ws)) is not None:
            if m["type"] == "Audio":
                frames.append(np.asarray(m["pcm"], dtype=np.float32))
            elif m["type"] == "Text":
                texts.append(m)
            else:
                raise AssertionError(m)
        assert ws.closed or (await ws.receive()).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        )
    return frames, texts


async def test_tts_session(server: InferenceServer) -> None:
    frames, texts = await tts_run(
        server, "hello world this is a test", "?voice=unmute-prod-website/developer-1.mp3"
    )
    assert len(frames) > 10
    assert all(f.size == FRAME for f in frames)
    audio = np.concatenate(frames)
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.02, rms
    assert [t["text"] for t in texts] == ["hello", "world", "this", "is", "a", "test"]
    starts = [t["start_s"] for t in texts]
    assert starts == sorted(starts)
    assert all(t["stop_s"] >= t["start_s"] for t in texts)
    assert texts[-1]["stop_s"] <= len(frames) * 0.08 + 0.5


async def test_tts_eos_alone_closes_without_audio(server: InferenceServer) -> None:
    """As Kyutai's server: nothing to say, nothing spoken (no blip of audio)."""
    frames, texts = await tts_run(server, "")
    assert frames == [] and texts == []


async def test_tts_unknown_voice(server: InferenceServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            server.tts_msgpack("?voice=nope/missing.wav"), headers=headers(server)
        ) as ws,
    ):
        m = await recv(ws)
        assert m is not None and m["type"] == "Error"
        assert "voice" in m["message"]
        assert await recv(ws) is None


async def test_auth_rejected(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/api/asr-streaming", "/api/tts_streaming"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(f"{server.url}{path}")
            assert err.value.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(f"{server.url}{path}?auth_id=wrong")
            assert err.value.status == 401
        # The query-parameter form is accepted too.
        async with http.ws_connect(f"{server.stt_url}?auth_id={server.api_key}") as ws:
            assert await recv(ws) == {"type": "Ready"}


async def test_no_free_channels_and_metrics(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http:
        held = [await http.ws_connect(server.stt_url, headers=headers(server)) for _ in range(2)]
        for ws in held:
            assert await recv(ws) == {"type": "Ready"}
        async with http.get(f"{server.http_url}/metrics") as resp:
            body = await resp.text()
        assert 'kyutai_slots_open{engine="stt"} 2.0' in body
        assert 'kyutai_slots_free{engine="stt"} 0.0' in body
        assert 'kyutai_slots_free{engine="tts"}' in body
        async with http.ws_connect(server.stt_url, headers=headers(server)) as ws:
            assert await recv(ws) == {"type": "Error", "message": "no free channels"}
            assert await recv(ws) is None
        # the operator sees the refusal in the log, not only in the metric
        assert "stt: all 2 slots busy, refused a session" in server.log_path.read_text()
        for ws in held:
            await ws.close()
        # Slots come back once clients leave.
        async with http.ws_connect(server.stt_url, headers=headers(server)) as ws:
            assert await recv(ws) == {"type": "Ready"}


async def test_malformed_messages(server: InferenceServer) -> None:
    bad: list[bytes | str] = [
        b"\xc1\xff not msgpack",
        pack({"no": "type"}),
        pack({"type": "Bogus"}),
        pack({"type": "Audio", "pcm": "nope"}),
        pack({"type": "Audio", "pcm": [0.1, "x"]}),
        pack({"type": "Marker", "id": "seven"}),
        msgpack.packb([1, 2, 3]),
        pack({"type": "Audio", "pcm": [0.0] * 1_100_000}),  # over the 4 MiB limit
        "plain text",
    ]
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.stt_url, headers=headers(server), max_msg_size=0) as ws,
    ):
        assert await recv(ws) == {"type": "Ready"}
        for payload in bad:
            if isinstance(payload, str):
                await ws.send_str(payload)
            else:
                await ws.send_bytes(payload)
            m = await recv(ws)
            assert m is not None and m["type"] == "Error", (payload[:20], m)
        # The session still works after the errors.
        await ws.send_bytes(pack({"type": "Audio", "pcm": [0.0] * FRAME}))
        m = await recv(ws)
        assert m is not None and m["type"] in ("Step", "Word", "EndWord")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.tts_msgpack(), headers=headers(server)) as ws,
    ):
        assert await recv(ws) == {"type": "Ready"}
        await ws.send_bytes(pack({"type": "Text", "text": 12}))
        m = await recv(ws)
        assert m is not None and m["type"] == "Error"
        await ws.send_bytes(pack({"type": "Voice", "embeddings": [0.0] * 3, "shape": [1, 2, 2]}))
        m = await recv(ws)
        assert m is not None and m["type"] == "Error"
    async with aiohttp.ClientSession() as http, http.get(f"{server.http_url}/api/build_info") as r:
        assert r.status == 200
        info = await r.json()
        assert info["stt"]["pause_heads"] is True


def test_graceful_shutdown(tiny_cache: Path) -> None:
    srv = start_inference_server(tiny_cache, batch_size=1, extra_args=["--only", "stt"])

    async def hold_connection() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(srv.stt_url, headers=headers(srv)) as ws,
        ):
            assert await recv(ws) == {"type": "Ready"}
            srv.process.send_signal(signal.SIGTERM)
            # The server closes our socket as part of shutting down.
            assert await recv(ws) is None

    try:
        asyncio.run(hold_connection())
        assert srv.process.wait(20) == 0
        assert "listening on" in srv.log()
    finally:
        srv.stop()


@pytest.mark.parametrize("command", ["download", "serve"])
def test_clear_error_when_weights_unreachable(command: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there: the hub is unreachable
    }
    env.pop("HF_HUB_OFFLINE", None)
    args = [sys.executable, "-m", "inference", command, "--models", "default"]
    if command == "serve":
        args += ["--host", "127.0.0.1", "--port", "0"]
    start = time.monotonic()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode != 0
    assert time.monotonic() - start < 45
    assert "could not fetch the weights of kyutai/" in proc.stderr
    assert "Traceback" not in proc.stderr
