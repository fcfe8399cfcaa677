"""Kyutai's Moshi as a LiveKit `DuplexModel`: it listens and speaks at once.

The session streams the room's audio to a Moshi server's `/api/chat` and yields every output
frame (silence included) on Moshi's own 80 ms clock, with its inner monologue as timed
transcript deltas. Interruptions are Moshi's own: nothing here pauses, cuts or drops its audio.

Two wires, found out per server from its first message:

- our inference server (`format=PcmMessagePack`): PCM frames numbered by step, monologue pieces
  on the same step grid, controls (`hold`, `release`, talkativeness), "no free channels";
- Kyutai's `moshi.server` and compatible servers (they ignore the query): the `0x00` handshake,
  then Ogg/Opus both ways and `0x02` text pieces, numbered here by counting frames.

URLs are tried in order; one with no free channel is skipped, and when a connection is lost
mid-call the session carries on with the next URL (a fresh Moshi: its state is lost). With no
URL left the session reports a non-recoverable error and its audio stream ends.

Moshi does not transcribe the user. Given a `kyutai.STT`, the session streams the same audio to
it (a slot of its own) and reports the user's words as input transcriptions: captions, and the
user's side of the history.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import numpy as np
from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    llm,
    stt,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from . import protocol
from .connection import (
    API_KEY_HEADER,
    HEARTBEAT_S,
    HttpSessions,
    endpoint,
    redact,
    resolve_api_key,
    resolve_urls,
)
from .log import logger
from .moshi_gate import STEP_KEY, TEXT_KEY, MoshiGate, frame_rms
from .moshi_hops import HopTracker

SAMPLE_RATE = 24000
FRAME_SIZE = 1920  # 80 ms: one Moshi step
FRAME_MS = 80
CHAT_ROUTE = "/api/chat"
DEFAULT_MOSHI_URL = "ws://127.0.0.1:8089"
MOSHI_URL_ENV = "KYUTAI_MOSHI_URL"

Wire = Literal["msgpack", "moshi"]


@dataclass
class _Options:
    urls: list[str]
    api_key: str
    connect_timeout: float
    gate_hangover_s: float
    user_stt: stt.STT | None
    user_stt_conn_options: APIConnectOptions


class Moshi(llm.DuplexModel):
    def __init__(
        self,
        *,
        urls: str | Sequence[str] | None = None,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        gate_hangover_s: float = 0.5,
        user_stt: stt.STT | None = None,
        user_stt_conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``urls``: Moshi servers tried in order (default ``$KYUTAI_MOSHI_URL``, comma
        separated, else ws://127.0.0.1:8089); ``gate_hangover_s``: silence that ends a burst
        of Moshi's speech (one assistant message); ``user_stt``: a streaming STT (e.g.
        ``kyutai.STT()``) that transcribes the user, whose words Moshi does not give, with
        ``user_stt_conn_options`` for its retries."""
        if user_stt is not None and not user_stt.capabilities.streaming:
            raise ValueError("user_stt must be a streaming STT")
        super().__init__(
            capabilities=llm.DuplexCapabilities(
                user_transcription=user_stt is not None, auto_tool_reply_generation=True
            )
        )
        self._opts = _Options(
            urls=resolve_urls(urls, MOSHI_URL_ENV, DEFAULT_MOSHI_URL),
            api_key=resolve_api_key(api_key),
            connect_timeout=connect_timeout,
            gate_hangover_s=gate_hangover_s,
            user_stt=user_stt,
            user_stt_conn_options=user_stt_conn_options,
        )
        self._http = HttpSessions(http_session)
        self._sessions: list[MoshiSession] = []

    @property
    def model(self) -> str:
        return "moshi"

    @property
    def provider(self) -> str:
        return "kyutai"

    @property
    def urls(self) -> list[str]:
        return list(self._opts.urls)

    def audio_gate(self) -> MoshiGate:
        return MoshiGate(hangover_s=self._opts.gate_hangover_s)

    def session(self) -> MoshiSession:
        s = MoshiSession(self)
        self._sessions.append(s)
        return s

    async def aclose(self) -> None:
        for s in list(self._sessions):
            await s.aclose()
        await self._http.aclose()


class _Lost(Exception):
    """The connection ended under us; the session moves on to the next URL."""


class MoshiSession(llm.DuplexSession[Any]):
    def __init__(self, model: Moshi) -> None:
        super().__init__(model)
        self._model = model
        self._opts = model._opts
        self._tools = llm.ToolContext.empty()
        self._input: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._output: asyncio.Queue[llm.DuplexAudioFrame | None] = asyncio.Queue()
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = SAMPLE_RATE
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._wire: Wire | None = None
        self.url: str | None = None  # the server in use (redacted)
        self.steps = 0  # output frames yielded
        self.reconnects = 0
        self._hops = HopTracker()
        self._sent_samples = 0
        self._task = asyncio.create_task(self._run(), name="kyutai-moshi-session")
        self._user_stt: stt.RecognizeStream | None = None
        self._user_task: asyncio.Task[None] | None = None
        if self._opts.user_stt is not None:
            self._user_stt = self._opts.user_stt.stream(
                conn_options=self._opts.user_stt_conn_options
            )
            self._user_task = asyncio.create_task(
                self._transcribe_user(self._user_stt), name="kyutai-moshi-user-stt"
            )

    # ---- the framework's side -------------------------------------------------------------
    @property
    def audio_stream(self) -> AsyncIterable[llm.DuplexAudioFrame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[llm.DuplexAudioFrame]:
        while True:
            item = await self._output.get()
            if item is None:
                return
            yield item

    @property
    def tools(self) -> llm.ToolContext:
        return self._tools

    @property
    def wire(self) -> Wire | None:
        return self._wire

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        if self._closing:
            return
        if self._user_stt is not None and self._user_task is not None:
            if not self._user_task.done():
                self._user_stt.push_frame(frame)
        if self._hops.input(frame_rms(frame), frame.duration):
            self._hop("user_onset", self.steps)
        frames = [frame]
        if frame.sample_rate != SAMPLE_RATE or frame.num_channels != 1:
            frames = self._resample(frame)
        for f in frames:
            pcm = protocol.frame_to_float(f)
            if pcm.size:
                self._input.put_nowait(pcm)
                self._hops.input_samples(pcm.size)

    def _resample(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        if frame.num_channels > 1:
            mono = protocol.frame_to_float(frame)
            frame = rtc.AudioFrame(protocol.float_to_pcm16(mono), frame.sample_rate, 1, mono.size)
        if frame.sample_rate == SAMPLE_RATE:
            return [frame]
        if self._resampler is None or self._resampler_rate != frame.sample_rate:
            self._resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=1)
            self._resampler_rate = frame.sample_rate
        return list(self._resampler.push(frame))

    async def aclose(self) -> None:
        await super().aclose()
        for task in (self._task, self._user_task):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._user_stt is not None:
            await self._user_stt.aclose()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        self._output.put_nowait(None)
        if self in self._model._sessions:
            self._model._sessions.remove(self)

    async def _update_instructions(self, instructions: str) -> None:
        if instructions:
            # Moshi has no text input: its persona lives in its weights.
            logger.debug("Moshi takes no instructions; ignoring %d characters", len(instructions))

    async def _append_items(self, items: list[llm.ChatItem]) -> None:
        # Tool results and the history are the app's business (shown, or spoken while Moshi
        # is held); Moshi itself hears only audio.
        for item in items:
            if isinstance(item, llm.FunctionCallOutput):
                logger.debug("tool %s returned (not sent to Moshi)", item.name)

    async def _update_tools(self, tools: list[llm.Tool]) -> None:
        self._tools = llm.ToolContext(tools)

    def _update_options(
        self, *, tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN
    ) -> None:
        pass

    # ---- the app's side -------------------------------------------------------------------
    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> str:
        """Raise a function call (Moshi never calls tools itself: an intent watcher does); the
        framework runs it while Moshi keeps talking. Returns the call id."""
        call_id = f"moshi_{uuid.uuid4().hex[:12]}"
        self.emit(
            "function_call",
            llm.FunctionCall(call_id=call_id, name=name, arguments=json.dumps(arguments or {})),
        )
        return call_id

    async def hold(self) -> None:
        """Moshi keeps listening but says nothing (e.g. while a tool result is spoken)."""
        await self._control("hold")

    async def release(self) -> None:
        await self._control("release")

    async def set_talkativeness(self, pad_bias: float) -> None:
        """Added to the PAD logit: > 0 quieter, < 0 chattier (within ±10)."""
        await self._control("pad_bias", pad_bias)

    async def _control(self, action: str, value: float | None = None) -> None:
        if self._wire != "msgpack" or self._ws is None or self._ws.closed:
            raise APIError(
                f"Moshi {action} needs our inference server's msgpack wire "
                f"(connected: {self._wire or 'nothing'})",
                retryable=False,
            )
        await self._ws.send_bytes(protocol.encode_control(action, value))

    async def _transcribe_user(self, stream: stt.RecognizeStream) -> None:
        """The user's words from the STT, as the framework's input transcriptions: one item
        per user turn, interim then final."""
        item_id: str | None = None
        started: float | None = None
        try:
            async for ev in stream:
                if ev.type == stt.SpeechEventType.START_OF_SPEECH:
                    item_id, started = None, time.time()
                    continue
                final = ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT
                if not (final or ev.type == stt.SpeechEventType.INTERIM_TRANSCRIPT):
                    continue
                text = ev.alternatives[0].text.strip() if ev.alternatives else ""
                if not text:
                    continue
                if item_id is None:
                    item_id = f"moshi_user_{uuid.uuid4().hex[:12]}"
                self.emit(
                    "input_audio_transcription_completed",
                    llm.InputTranscriptionCompleted(
                        item_id=item_id,
                        transcript=text,
                        is_final=final,
                        turn_started_at=started,
                    ),
                )
                if final:
                    item_id, started = None, None
        except APIError as e:
            # Moshi goes on without captions of the user: say so, once, loudly.
            logger.error("user transcription stopped (Moshi goes on without it): %s", e)
            self.emit(
                "error",
                llm.RealtimeModelError(
                    timestamp=time.time(), label=self._model.label, error=e, recoverable=True
                ),
            )

    # ---- connection -----------------------------------------------------------------------
    async def _run(self) -> None:
        urls = self._opts.urls
        start = 0
        try:
            while not self._closing:
                t0 = time.perf_counter()
                try:
                    index = await self._connect(urls, start)
                except APIError as e:
                    self._fail(e)
                    return
                if self.reconnects == 0 and self.steps == 0:
                    self._report_connection_acquired(time.perf_counter() - t0)
                else:
                    self.emit("session_reconnected", llm.RealtimeSessionReconnectedEvent())
                try:
                    await self._serve()
                except _Lost as e:
                    if self._closing:
                        return
                    logger.warning("Moshi server %s lost (%s); trying the next", self.url, e)
                self.reconnects += 1
                start = index + 1
                if start >= len(urls):
                    self._fail(APIConnectionError(f"Moshi server {self.url} lost, none left"))
                    return
        finally:
            self._output.put_nowait(None)

    def _fail(self, error: APIError) -> None:
        logger.error("Moshi session ends: %s", error)
        self.emit(
            "error",
            llm.RealtimeModelError(
                timestamp=time.time(),
                label=self._model.label,
                error=error,
                recoverable=False,
            ),
        )

    async def _connect(self, urls: list[str], start: int) -> int:
        """Connect to the first URL from `start` that gives us a slot; its index."""
        http = self._model._http.get()
        headers = {API_KEY_HEADER: self._opts.api_key}
        last: APIError | None = None
        for index in range(start, len(urls)):
            url = endpoint(urls[index], CHAT_ROUTE, {"format": "PcmMessagePack"})
            try:
                ws = await asyncio.wait_for(
                    http.ws_connect(url, headers=headers, heartbeat=HEARTBEAT_S, max_msg_size=0),
                    self._opts.connect_timeout,
                )
            except aiohttp.WSServerHandshakeError as e:
                if e.status in (401, 403):
                    raise APIStatusError(
                        f"Moshi server {redact(url)} rejected the API key (HTTP {e.status})",
                        status_code=e.status,
                        retryable=False,
                    ) from e
                last = APIStatusError(
                    f"Moshi server {redact(url)} refused the upgrade (HTTP {e.status})",
                    status_code=e.status,
                )
                continue
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                last = APIConnectionError(f"Moshi server {redact(url)} is unreachable: {e}")
                continue
            wire = await self._hello(ws, url)
            if isinstance(wire, APIError):
                last = wire
                continue
            self._ws, self._wire, self.url = ws, wire, redact(url)
            logger.info("Moshi session on %s (%s wire)", self.url, wire)
            return index
        raise last or APIConnectionError("no Moshi server URL")

    async def _hello(self, ws: aiohttp.ClientWebSocketResponse, url: str) -> Wire | APIError:
        try:
            msg = await asyncio.wait_for(ws.receive(), self._opts.connect_timeout)
        except TimeoutError:
            await ws.close()
            return APIConnectionError(f"Moshi server {redact(url)} sent no handshake")
        if msg.type == aiohttp.WSMsgType.BINARY and msg.data[:1] == b"\x00":
            return "moshi"  # moshi.server (and Kyutai's Rust server: 8 more bytes)
        if msg.type == aiohttp.WSMsgType.BINARY:
            try:
                first = protocol.decode(msg.data)
            except protocol.ProtocolError:
                first = None
            if isinstance(first, protocol.Ready):
                return "msgpack"
            await ws.close()
            if isinstance(first, protocol.Error) and first.at_capacity:
                logger.info("Moshi server %s has no free channels, trying the next", redact(url))
                return APIStatusError(f"{redact(url)}: no free channels", status_code=503)
            return APIConnectionError(f"Moshi server {redact(url)} sent {first!r} first")
        reason = (ws.close_code, msg.extra)
        await ws.close()
        if ws.close_code == 1013:
            logger.info("Moshi server %s has no free channels, trying the next", redact(url))
            return APIStatusError(f"{redact(url)}: no free channels", status_code=503)
        return APIConnectionError(f"Moshi server {redact(url)} closed at once: {reason}")

    async def _serve(self) -> None:
        ws = self._ws
        assert ws is not None
        recv = asyncio.create_task(self._recv_loop(ws))
        send = asyncio.create_task(self._send_loop(ws))
        try:
            done, _ = await asyncio.wait({recv, send}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = t.exception()
                if exc is not None and not isinstance(exc, _Lost):
                    raise _Lost(str(exc)) from exc
            raise _Lost("the server closed the session")
        finally:
            for t in (recv, send):
                t.cancel()
            await asyncio.gather(recv, send, return_exceptions=True)
            if not ws.closed:
                await ws.close()

    async def _send_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        opus: Any = None
        if self._wire == "moshi":
            import sphn

            opus = sphn.OpusStreamWriter(SAMPLE_RATE)
        pending: np.ndarray = np.zeros(0, dtype=np.float32)
        while True:
            pcm = await self._input.get()
            pending = np.concatenate([pending, pcm]) if pending.size else pcm
            n = (pending.size // FRAME_SIZE) * FRAME_SIZE
            if n == 0:
                continue
            # whole 80 ms frames: Moshi steps per frame
            chunk, pending = pending[:n], pending[n:]
            if self._hops.sent(self._sent_samples, n):
                self._hop("onset_sent", self.steps)
            self._sent_samples += n
            try:
                if opus is None:
                    await ws.send_bytes(protocol.encode_audio(chunk))
                else:
                    for i in range(0, n, FRAME_SIZE):
                        page = bytes(opus.append_pcm(chunk[i : i + FRAME_SIZE]))
                        if page:
                            await ws.send_bytes(b"\x01" + page)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as e:
                raise _Lost(f"send failed: {e}") from e

    async def _recv_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        opus: Any = None
        decoded: np.ndarray = np.zeros(0, dtype=np.float32)
        if self._wire == "moshi":
            import sphn

            opus = sphn.OpusStreamReader(SAMPLE_RATE)
        # Steps continue across a reconnection: the adapter's clock must not jump back.
        base = self.steps
        text_steps: set[int] = set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            if opus is not None:
                kind, payload = msg.data[0], bytes(msg.data[1:])
                if kind == 1:
                    decoded = np.concatenate([decoded, np.asarray(opus.append_bytes(payload))])
                    while decoded.size >= FRAME_SIZE:
                        frame, decoded = decoded[:FRAME_SIZE], decoded[FRAME_SIZE:]
                        self._yield(frame, text_steps)
                elif kind == 2:
                    # moshi.server sends a piece when sampled, before its audio is decoded
                    self._text(payload.decode(errors="replace"), self.steps, text_steps)
                elif kind == 5:
                    logger.warning("Moshi server: %s", payload.decode(errors="replace"))
                continue
            try:
                m = protocol.decode(msg.data)
            except protocol.ProtocolError as e:
                logger.warning("Moshi server sent an undecodable frame: %s", e)
                continue
            if isinstance(m, protocol.Text):
                # our server sends a step's piece just before that step's audio
                step = base + m.step_idx if m.step_idx is not None else self.steps
                self._text(m.text, step, text_steps)
            elif isinstance(m, protocol.Audio):
                self._yield(m.pcm, text_steps)
            elif isinstance(m, protocol.Error):
                logger.warning("Moshi server: %s", m.message)

    def _text(self, text: str, step: int, text_steps: set[int]) -> None:
        if not text:
            return
        text_steps.add(step)
        self.emit(
            "transcript_delta",
            llm.DuplexOutputTranscriptDelta(
                text=text, start_ms=step * FRAME_MS, end_ms=(step + 1) * FRAME_MS
            ),
        )

    def _hop(self, name: str, step: int) -> None:
        logger.debug("moshi hop %s at %.4f step %d", name, time.monotonic(), step)

    def _yield(self, pcm: np.ndarray, text_steps: set[int]) -> None:
        step = self.steps
        spoken = step in text_steps
        text_steps.discard(step)
        frame = rtc.AudioFrame(
            protocol.float_to_pcm16(np.asarray(pcm, dtype=np.float32)),
            SAMPLE_RATE,
            1,
            len(pcm),
            userdata={TEXT_KEY: spoken, STEP_KEY: step},
        )
        self.steps += 1
        if (hop := self._hops.output(frame_rms(frame))) is not None:
            self._hop(hop, step)
        self._output.put_nowait(llm.DuplexAudioFrame(frame=frame, start_ms=step * FRAME_MS))
