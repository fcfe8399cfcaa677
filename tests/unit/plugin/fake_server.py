"""A scripted stand-in for a Kyutai server, to drive the plugins' stream mechanics
deterministically (auth, capacity, flush markers, drops). Not a model: it replays a script."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
from aiohttp import WSMsgType, web

FRAME = 1920


def pack(obj: dict[str, Any]) -> bytes:
    out = msgpack.packb(obj, use_bin_type=True, use_single_float=True)
    assert isinstance(out, bytes)
    return out


@dataclass
class FakeKyutai:
    api_key: str = "public_token"
    capacity: int = 4
    delay_frames: int = 6
    # frame index -> messages sent after that frame is "processed" (STT)
    stt_script: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    # pause probability of head 2 for frame i (STT)
    pause_prob: Callable[[int], float] = lambda i: 0.0
    drop_after_frames: int | None = None  # close STT sockets after this many frames
    # Kyutai's Rust server numbers steps across its batch: a connection may start at 10 000.
    step_idx_base: int = 0
    # Kyutai's Python STT module (PyBatchedAsr) ends the session after echoing a Marker.
    close_after_marker: bool = False
    send_steps: bool = True  # False: a model without pause heads
    step_s: float = 0.0  # compute per STT step: > 0 is a server slower than the audio it gets
    # STT steps stop once this many frames are processed, until `resume` is set
    hold_at_frame: int | None = None
    resume: asyncio.Event = field(default_factory=asyncio.Event)
    tts_frames_per_word: int = 2
    open_sockets: int = 0
    connections: int = 0
    tts_texts: list[list[str]] = field(default_factory=list)
    tts_queries: list[dict[str, str]] = field(default_factory=list)
    tts_eos: int = 0
    tts_voices: set[str] | None = None  # None: every voice exists
    stt_frames: int = 0
    markers: list[int] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> FakeKyutai:
        app = web.Application()
        app.router.add_get("/api/asr-streaming", self._stt)
        app.router.add_get("/api/tts_streaming", self._tts)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        """Wait, without polling, until the server's state satisfies ``predicate``."""

        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)

        await asyncio.wait_for(wait(), timeout)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _open(self, request: web.Request) -> web.WebSocketResponse | web.Response:
        if request.headers.get("kyutai-api-key") != self.api_key:
            return web.Response(status=401, text="bad key")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        if self.open_sockets >= self.capacity:
            await ws.send_bytes(pack({"type": "Error", "message": "no free channels"}))
            await ws.close()
            return ws
        self.open_sockets += 1
        self.closed.clear()
        await ws.send_bytes(pack({"type": "Ready"}))
        await self._notify()
        return ws

    async def _release(self) -> None:
        self.open_sockets -= 1
        self.closed.set()
        await self._notify()

    async def _stt(self, request: web.Request) -> web.StreamResponse:
        ws = await self._open(request)
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        buf = np.zeros(0, dtype=np.float32)
        frames = 0
        pending_markers: list[tuple[int, int]] = []
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                data = msgpack.unpackb(msg.data)
                if data["type"] == "Marker":
                    due = -(-(frames * FRAME + buf.size) // FRAME) + self.delay_frames
                    pending_markers.append((data["id"], due))
                    continue
                buf = np.concatenate([buf, np.asarray(data["pcm"], dtype=np.float32)])
                while buf.size >= FRAME:
                    buf = buf[FRAME:]
                    if self.hold_at_frame is not None and self.stt_frames >= self.hold_at_frame:
                        await self.resume.wait()
                    if self.step_s:
                        await asyncio.sleep(self.step_s)  # stands for the model's compute
                    p = self.pause_prob(self.stt_frames)
                    # as Kyutai's server: a step's Step comes before its words
                    out: list[dict[str, Any]] = []
                    if self.send_steps:
                        step = {"type": "Step", "step_idx": self.step_idx_base + frames}
                        out.append({**step, "prs": [p, p, p, p], "buffered_pcm": 0})
                    out += self.stt_script.get(self.stt_frames, [])
                    frames += 1
                    self.stt_frames += 1
                    await self._notify()
                    for mid, due in list(pending_markers):
                        if due <= frames:
                            out.append({"type": "Marker", "id": mid})
                            self.markers.append(mid)
                            pending_markers.remove((mid, due))
                    for m in out:
                        await ws.send_bytes(pack(m))
                    if self.close_after_marker and any(m["type"] == "Marker" for m in out):
                        await ws.close()
                        return ws
                    if self.drop_after_frames is not None and frames >= self.drop_after_frames:
                        await ws.close()
                        return ws
        finally:
            await self._release()
        return ws

    async def _tts(self, request: web.Request) -> web.StreamResponse:
        self.tts_queries.append(dict(request.query))
        await self._notify()
        voice = request.query.get("voice", "")
        if self.tts_voices is not None and voice not in self.tts_voices:
            # as our server: refused before Ready
            unknown = web.WebSocketResponse()
            await unknown.prepare(request)
            self.connections += 1
            await unknown.send_bytes(pack({"type": "Error", "message": f"unknown voice {voice!r}"}))
            await unknown.close()
            return unknown
        ws = await self._open(request)
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        words: list[str] = []
        self.tts_texts.append(words)
        t = 0.0
        try:
            await ws.send_bytes(pack({"type": "Text", "text": "", "start_s": 0.0, "stop_s": 0.0}))
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                data = msgpack.unpackb(msg.data)
                if data["type"] == "Text":
                    for w in data["text"].split():
                        words.append(w)
                        await self._notify()
                        dur = 0.08 * self.tts_frames_per_word
                        await ws.send_bytes(
                            pack({"type": "Text", "text": w, "start_s": t, "stop_s": t + dur})
                        )
                        for _ in range(self.tts_frames_per_word):
                            pcm = (0.3 * np.sin(np.arange(FRAME) / 5.0)).astype(np.float32)
                            await ws.send_bytes(pack({"type": "Audio", "pcm": pcm.tolist()}))
                        t += dur
                elif data["type"] == "Eos":
                    self.tts_eos += 1
                    await ws.close()
                    break
        finally:
            await self._release()
        return ws
