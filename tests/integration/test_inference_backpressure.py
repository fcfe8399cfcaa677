"""A client sending much faster than real time is slowed down, never cut.

Kyutai's file client (delayed-streams-modeling `stt_from_file_rust_server.py --rtf 1000`)
pushes a whole recording at once and ignores `Error` messages: a server that dropped audio past
its backlog would return the marker with a silently truncated transcript. Ours stops reading
the socket while the backlog is full, so the client's sends wait on TCP and every frame is
transcribed."""

from __future__ import annotations

import asyncio
import math
import re
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

pytestmark = pytest.mark.timeout(300)

SECONDS = 57.0
DELAY_FRAMES = 6  # tiny STT: 0.5 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    # default KYUTAI_MAX_BUFFERED_SECONDS (30 s): the 57 s recording is twice the backlog
    with start_inference_server(tmp_path_factory.mktemp("kyutai-tiny"), batch_size=2) as srv:
        yield srv


async def _metric(http: aiohttp.ClientSession, srv: InferenceServer, name: str) -> float:
    async with http.get(f"{srv.http_url}/metrics") as resp:
        text = await resp.text()
    m = re.search(rf'^{name}\{{engine="stt"\}} (\S+)$', text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def test_a_recording_sent_at_once_is_transcribed_to_the_end(server: InferenceServer) -> None:
    audio = np.asarray(speechlike(SECONDS, seed=5), dtype=np.float32)
    chunk = 24000 // 2  # 0.5 s per message, as fast as the socket takes them
    msgs: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.stt_url, headers={"kyutai-api-key": server.api_key}) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}

        async def send() -> None:
            for i in range(0, audio.size, chunk):
                await ws.send_bytes(
                    kyutai_pack({"type": "Audio", "pcm": audio[i : i + chunk].tolist()})
                )
            await ws.send_bytes(kyutai_pack({"type": "Marker", "id": 9}))
            silence = np.zeros(FRAME * (DELAY_FRAMES + 2), dtype=np.float32)
            await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": silence.tolist()}))

        async def receive() -> None:
            while True:
                m = await kyutai_recv(ws, timeout=60)
                assert m is not None, "the server closed the session"
                msgs.append(m)
                if m["type"] == "Marker":
                    return

        await asyncio.wait_for(asyncio.gather(send(), receive()), 240)
        backpressure = await _metric(http, server, "kyutai_backpressure_total")

    errors = [m for m in msgs if m["type"] == "Error"]
    assert errors == [], errors[:3]
    assert msgs[-1] == {"type": "Marker", "id": 9}
    # One Step per frame: every frame of the recording was processed, then the model delay.
    frames = math.ceil(audio.size / FRAME)
    steps = [m for m in msgs if m["type"] == "Step"]
    assert len(steps) == frames + DELAY_FRAMES
    # Words keep coming to the end of the recording.
    starts = [m["start_time"] for m in msgs if m["type"] == "Word"]
    assert starts and max(starts) > SECONDS - 5, max(starts, default=None)
    assert backpressure >= 1, "the backlog never filled: the test proves nothing"
