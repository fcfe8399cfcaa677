"""Batching is exact: with greedy tiny models, each of 8 concurrent sessions (joining and leaving
at different times, over slots that are reused) gets exactly what it gets when served alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
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

pytestmark = pytest.mark.timeout(240)

N = 8
VOICES = [
    "expresso/ex03-ex01_happy_001_channel1_334s.wav",
    "expresso/ex04-ex02_confused_001_channel2_111s.wav",
    "unmute-prod-website/developer-1.mp3",
    "vctk/p225_023.wav",
]
TEXTS = [
    "hello world this is a test",
    "the quick brown fox jumps over",
    "bonjour tout le monde",
    "one two three four five six seven",
    "speech to text in real time",
    "the lazy dog again and again",
    "ceci est un petit test",
    "seven eight nine ten",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    with start_inference_server(
        tmp_path_factory.mktemp("kyutai-tiny"),
        batch_size=N,
        tts_batch_size=N,
        extra_args=["--tts-temp", "0"],
    ) as srv:
        yield srv


class _Live:
    """How many sessions are open at once (between Ready and their end)."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def reset(self) -> None:
        self.now = self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


LIVE = _Live()


def auth(srv: InferenceServer) -> dict[str, str]:
    return {"kyutai-api-key": srv.api_key}


# ---- STT --------------------------------------------------------------------------------------
async def stt_session(
    srv: InferenceServer,
    index: int,
    started: asyncio.Event | None = None,
    wait_for: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    """One session: audio in frames of varying size, a Marker, silence until it returns.
    `started` is set after this session's third Step; `wait_for` gates its start."""
    if wait_for is not None:
        await wait_for.wait()
    audio = speechlike(1.2 + 0.3 * index, seed=index)
    chunk = 900 + 700 * index
    out: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(srv.stt_url, headers=auth(srv)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        LIVE.enter()
        for i in range(0, len(audio), chunk):
            await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": audio[i : i + chunk]}))
        await ws.send_bytes(kyutai_pack({"type": "Marker", "id": index}))
        silence = kyutai_pack({"type": "Audio", "pcm": [0.0] * FRAME})
        await ws.send_bytes(silence)
        steps = 0
        while True:
            m = await kyutai_recv(ws)
            assert m is not None
            if m["type"] == "Marker":
                break
            out.append(m)
            if m["type"] == "Step":
                steps += 1
                if steps == 3 and started is not None:
                    started.set()
                await ws.send_bytes(silence)  # keep the stream fed until the marker is back
        LIVE.leave()
    if started is not None:
        started.set()
    return out


def stt_view(msgs: list[dict[str, Any]]) -> tuple[list[Any], np.ndarray]:
    """Words/EndWords and step indices exactly, pause probabilities as an array."""
    exact = [
        (m["type"], m.get("text"), m.get("start_time"), m.get("stop_time"), m.get("step_idx"))
        for m in msgs
    ]
    prs = np.array([m["prs"] for m in msgs if m["type"] == "Step"], dtype=np.float64)
    return exact, prs


async def test_stt_batched_equals_alone(server: InferenceServer) -> None:
    alone = [await stt_session(server, i) for i in range(N)]
    LIVE.reset()
    # Staggered: session i starts once session i-1 has had 3 steps; lengths differ, so they
    # also leave at different times, and later sessions reuse the slots of earlier ones.
    gates = [asyncio.Event() for _ in range(N)]
    together = await asyncio.gather(
        *(
            stt_session(server, i, started=gates[i], wait_for=gates[i - 1] if i else None)
            for i in range(N)
        )
    )
    assert LIVE.peak >= 2, "the sessions were not served together"
    for i in range(N):
        exact_a, prs_a = stt_view(alone[i])
        exact_b, prs_b = stt_view(together[i])
        assert any(m["type"] == "Word" for m in alone[i]), f"session {i} has no words"
        assert exact_b == exact_a, f"session {i}"
        np.testing.assert_allclose(prs_b, prs_a, atol=1e-5, err_msg=f"session {i}")


# ---- TTS --------------------------------------------------------------------------------------
async def tts_session(
    srv: InferenceServer,
    index: int,
    started: asyncio.Event | None = None,
    wait_for: asyncio.Event | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    if wait_for is not None:
        await wait_for.wait()
    frames: list[list[float]] = []
    texts: list[dict[str, Any]] = []
    query = f"?voice={VOICES[index % len(VOICES)]}"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(srv.tts_msgpack(query), headers=auth(srv)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        LIVE.enter()
        # Words go out as fast as the socket takes them, so they reach the model thread at
        # arbitrary points between its steps: the output must not depend on that.
        for w in TEXTS[index].split():
            await ws.send_bytes(kyutai_pack({"type": "Text", "text": w}))
        await ws.send_bytes(kyutai_pack({"type": "Eos"}))
        while (m := await kyutai_recv(ws)) is not None:
            if m["type"] == "Audio":
                frames.append(m["pcm"])  # type: ignore[arg-type]
                if started is not None:
                    started.set()
            elif m["type"] == "Text":
                texts.append(m)
            else:
                raise AssertionError(m)
        LIVE.leave()
    if started is not None:
        started.set()
    return np.array(frames, dtype=np.float32), texts


async def test_tts_batched_equals_alone(server: InferenceServer) -> None:
    alone = [await tts_session(server, i) for i in range(N)]
    LIVE.reset()
    gates = [asyncio.Event() for _ in range(N)]
    together = await asyncio.gather(
        *(
            tts_session(server, i, started=gates[i], wait_for=gates[i - 1] if i else None)
            for i in range(N)
        )
    )
    for i in range(N):
        audio_a, texts_a = alone[i]
        audio_b, texts_b = together[i]
        assert [t["text"] for t in texts_a if t["text"]] == TEXTS[i].split()
        assert texts_b == texts_a, f"session {i}"
        assert audio_b.shape == audio_a.shape, f"session {i}"
        np.testing.assert_allclose(audio_b, audio_a, atol=1e-5, err_msg=f"session {i}")
    assert LIVE.peak >= 2, "the sessions were not served together"
