"""Clients of `/api/chat` (Moshi, full duplex) written from the protocol, for tests and benches.

No server code is imported: both encodings are spoken from their description.

- `MsgpackChat` (`?format=PcmMessagePack`): `Ready`, then `Audio {pcm, step_idx}` per step,
  `Text` on the same step grid (just before its step's audio), `Marker` echoes.
- `BinaryChat`: moshi.server's protocol, as `moshi/client.py` speaks it: wait for the `0x00`
  handshake, send `0x01` + Ogg/Opus pages (sphn), read `0x01` Ogg/Opus and `0x02` text pieces.

Both run **lock-step** with the server's 80 ms clock instead of sleeping: they send `lead`
frames, then the next frame each time an output frame arrives, as a client at real time does
(a frame reaches the server within the step's 80 ms). A larger `lead` is a standing queue,
which the server trims (one frame dropped per 2 s) because it is pure delay. The msgpack client
also puts a `Marker` after each input frame; the step that echoes marker k is the step that
consumed input frame k, which maps inputs to outputs exactly even if a frame arrived late.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack
import numpy as np

from .inference_server import kyutai_pack as pack

FRAME = 1920
SAMPLE_RATE = 24000


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def frames_of(pcm: np.ndarray) -> list[np.ndarray]:
    """`pcm` cut into 1920-sample frames, the last one zero-padded."""
    n = -(-pcm.size // FRAME)
    padded = np.zeros(n * FRAME, dtype=np.float32)
    padded[: pcm.size] = pcm
    return [padded[i * FRAME : (i + 1) * FRAME] for i in range(n)]


@dataclass
class Step:
    """One output step as the client saw it."""

    index: int
    pcm: np.ndarray
    text: str = ""
    markers: list[int] = field(default_factory=list)

    @property
    def rms(self) -> float:
        return rms(self.pcm)


@dataclass
class Conversation:
    steps: list[Step]
    # input frame k -> the output step that consumed it (msgpack only; from the markers)
    consumed: dict[int, int]
    errors: list[str]

    def text(self, start: int = 0, stop: int | None = None) -> str:
        return "".join(s.text for s in self.steps[start:stop])


def auth_headers(api_key: str) -> dict[str, str]:
    return {"kyutai-api-key": api_key}


class MsgpackChat:
    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0) -> None:
        self.url = url + ("&" if "?" in url else "?") + "format=PcmMessagePack"
        self.api_key = api_key
        self.timeout = timeout

    async def run(
        self,
        frames: list[np.ndarray],
        *,
        lead: int = 1,
        tail: int = 0,
        before: dict[int, list[dict[str, Any]]] | None = None,
        ws: aiohttp.ClientWebSocketResponse | None = None,
    ) -> Conversation:
        """Send `frames` lock-step (`before[k]`: messages sent just before frame k), then read
        `tail` more steps after the last frame was consumed."""
        if ws is not None:
            return await self._run(ws, frames, lead, tail, before or {})
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self.url, headers=auth_headers(self.api_key)) as sock,
        ):
            ready = await self.recv(sock)
            if ready is None or ready.get("type") != "Ready":
                raise RuntimeError(f"expected Ready, got {ready}")
            return await self._run(sock, frames, lead, tail, before or {})

    async def recv(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
        msg = await asyncio.wait_for(ws.receive(), self.timeout)
        if msg.type != aiohttp.WSMsgType.BINARY:
            return None
        out = msgpack.unpackb(msg.data, raw=False)
        assert isinstance(out, dict), out
        return out

    async def _run(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        frames: list[np.ndarray],
        lead: int,
        tail: int,
        before: dict[int, list[dict[str, Any]]],
    ) -> Conversation:
        conv = Conversation([], {}, [])
        sent = 0
        pending_text = ""  # a step's piece comes just before its audio

        async def send_next() -> None:
            nonlocal sent
            if sent >= len(frames):
                return
            for m in before.get(sent, ()):
                await ws.send_bytes(pack(m))
            await ws.send_bytes(pack({"type": "Audio", "pcm": frames[sent].tolist()}))
            await ws.send_bytes(pack({"type": "Marker", "id": sent}))
            sent += 1

        for _ in range(min(lead, len(frames))):
            await send_next()
        done_at: int | None = None if frames else tail
        while done_at is None or len(conv.steps) < done_at:
            m = await self.recv(ws)
            if m is None:
                raise RuntimeError("the server closed the session")
            kind = m["type"]
            if kind == "Audio":
                idx = int(m["step_idx"])
                if conv.steps and idx != conv.steps[-1].index + 1:
                    raise AssertionError(f"step {idx} after {conv.steps[-1].index}")
                conv.steps.append(Step(idx, np.asarray(m["pcm"], dtype=np.float32), pending_text))
                pending_text = ""
                await send_next()
            elif kind == "Text":
                expected = conv.steps[-1].index + 1 if conv.steps else 0
                assert int(m["step_idx"]) == expected, (m, expected)
                pending_text += str(m["text"])
            elif kind == "Marker":
                k = int(m["id"])
                conv.consumed[k] = conv.steps[-1].index if conv.steps else -1
                if conv.steps:
                    conv.steps[-1].markers.append(k)
                if k == len(frames) - 1:
                    done_at = len(conv.steps) + tail
            elif kind == "Error":
                conv.errors.append(str(m["message"]))
        return conv


class BinaryChat:
    """moshi.server's protocol, with Opus through sphn as Kyutai's own client does."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.api_key = api_key
        self.timeout = timeout

    async def run(
        self, frames: list[np.ndarray], *, lead: int = 1, tail: int = 0, missing: int = 0
    ) -> Conversation:
        """Send `frames` lock-step and read as many output frames, less `missing` (moshi.server
        answers its first input frame with nothing), plus `tail`."""
        import sphn

        writer = sphn.OpusStreamWriter(SAMPLE_RATE)
        reader = sphn.OpusStreamReader(SAMPLE_RATE)
        conv = Conversation([], {}, [])
        sent = 0
        pending_text = ""
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self.url, headers=auth_headers(self.api_key)) as ws,
        ):
            first = await asyncio.wait_for(ws.receive(), self.timeout)
            if first.type != aiohttp.WSMsgType.BINARY or first.data[:1] != b"\x00":
                raise RuntimeError(f"expected the 0x00 handshake, got {first}")

            async def send_next() -> None:
                nonlocal sent
                if sent >= len(frames):
                    return
                page = bytes(writer.append_pcm(frames[sent]))
                sent += 1
                if page:
                    await ws.send_bytes(b"\x01" + page)

            for _ in range(min(lead, len(frames))):
                await send_next()
            want = len(frames) - missing + tail
            while len(conv.steps) < want:
                msg = await asyncio.wait_for(ws.receive(), self.timeout)
                if msg.type != aiohttp.WSMsgType.BINARY:
                    raise RuntimeError(f"the server closed the session: {msg}")
                kind, payload = msg.data[0], bytes(msg.data[1:])
                if kind == 1:
                    pcm = np.asarray(reader.append_bytes(payload), dtype=np.float32)
                    conv.steps.append(Step(len(conv.steps), pcm, pending_text))
                    pending_text = ""
                    await send_next()
                elif kind == 2:
                    # ours sends a step's piece before its audio; moshi.server as it comes
                    pending_text += payload.decode()
                elif kind == 5:
                    conv.errors.append(payload.decode())
        return conv
