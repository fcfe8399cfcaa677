"""Kyutai streaming speech-to-text with semantic end of turn from the pause-prediction heads."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    stt,
    utils,
)
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr, TimedString
from livekit.agents.utils import AudioBuffer, is_given

from . import backlog, connection, protocol
from .log import logger
from .models import DEFAULT_STT_URL, FRAME_SIZE, SAMPLE_RATE, STT_ROUTE
from .turn import (
    DEFAULT_DELAY_STEPS,
    VOICED_PEAK,
    AudioTimeline,
    FlushNeeded,
    SpeechEnded,
    SpeechStarted,
    TimedWord,
    TranscriptUpdated,
    TurnEvent,
    TurnFinished,
    TurnOptions,
    TurnTracker,
    flush_target,
)

STT_URL_ENV = "KYUTAI_STT_URL"
# Silence each connection starts with (0.96 s), as Kyutai's own clients send.
LEAD_SILENCE_FRAMES = 12
# A flush on a connection that has had no Step yet waits this long for one (its lead silence
# brings Steps at once from a model with pause heads) before settling for a Marker.
FIRST_STEP_WAIT_S = 1.0


@dataclass
class _STTOptions:
    urls: list[str]
    api_key: str
    language: str
    turn: TurnOptions
    flush_frames: int
    flush_timeout: float
    flush_to_voice: bool
    usage_interval: float


class STT(stt.STT):
    def __init__(
        self,
        *,
        url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        language: str = "en",
        pause_head: int = 2,
        pause_threshold: float = 0.6,
        pause_smoothing: float = 0.0,
        warmup_steps: int = 12,
        use_pause_heads: bool = True,
        flush_frames: int = 8,
        flush_timeout: float = 3.0,
        flush_to_voice: bool = True,
        usage_interval: float = 10.0,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Kyutai streaming STT (kyutai/stt-1b-en_fr, or any model behind a moshi-server-compatible
        ``/api/asr-streaming``).

        Args:
            url: server URL, a comma separated string or a list tried in order when one has no
                free channels. Defaults to ``$KYUTAI_STT_URL``. ``/api/asr-streaming`` is
                appended to URLs without a path.
            api_key: sent as the ``kyutai-api-key`` header; defaults to ``$KYUTAI_API_KEY`` or
                ``public_token``.
            language: language reported on transcripts (the 1B model understands en and fr).
            pause_head: pause-prediction head that ends a turn (0..3 ↔ 0.5, 1, 2, 3 s pauses).
            pause_threshold: the turn ends when the head's probability exceeds this.
            pause_smoothing: exponential smoothing of the probability, in [0, 1).
            warmup_steps: 80 ms steps ignored at the start of a connection.
            use_pause_heads: end turns from the pause heads (END_OF_SPEECH); False leaves it to
                the framework's flush, e.g. with ``turn_detection="vad"``.
            flush_frames: silent 80 ms frames pushed at the end of a turn so the words still
                inside the model delay come out (ceil(delay / 0.08) + 1).
            flush_timeout: give up on a flush after this many seconds without progress
                (a server still stepping through queued audio is waited for).
            flush_to_voice: a flush with pause heads reaches only past the last voiced frame
                (peak above about -50 dBFS), not through the whole pause: the pause's
                transcript is empty, and the final transcript comes that much sooner. False
                steps through all the audio sent and the model delay, as Unmute does.
            usage_interval: seconds of audio between RECOGNITION_USAGE reports.
            http_session: aiohttp session to use; the job's shared session by default.
        """
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=True,
                aligned_transcript="word",
                offline_recognize=False,
                manual_flush=True,
            )
        )
        self._opts = _STTOptions(
            urls=connection.resolve_urls(url, STT_URL_ENV, DEFAULT_STT_URL),
            api_key=connection.resolve_api_key(api_key),
            language=language,
            turn=TurnOptions(
                pause_head=pause_head,
                threshold=pause_threshold,
                smoothing=pause_smoothing,
                warmup_steps=warmup_steps,
                use_pause_heads=use_pause_heads,
            ),
            flush_frames=max(1, flush_frames),
            flush_timeout=flush_timeout,
            flush_to_voice=flush_to_voice,
            usage_interval=usage_interval,
        )
        self._http = connection.HttpSessions(http_session)
        self._streams: set[SpeechStream] = set()  # weak enough: removed when they close

    @property
    def model(self) -> str:
        return "kyutai-stt"

    @property
    def provider(self) -> str:
        return "kyutai"

    @property
    def urls(self) -> list[str]:
        return list(self._opts.urls)

    def update_options(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        pause_threshold: NotGivenOr[float] = NOT_GIVEN,
        pause_head: NotGivenOr[int] = NOT_GIVEN,
    ) -> None:
        """Applies to streams opened afterwards (and the language to open ones too)."""
        if is_given(language):
            self._opts.language = language
        turn = dataclasses.replace(
            self._opts.turn,
            threshold=pause_threshold if is_given(pause_threshold) else self._opts.turn.threshold,
            pause_head=pause_head if is_given(pause_head) else self._opts.turn.pause_head,
        )
        self._opts.turn = turn
        for s in self._streams:
            if is_given(language):
                s._opts.language = language

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechStream:
        opts = dataclasses.replace(self._opts)
        if is_given(language):
            opts.language = language
        s = SpeechStream(stt=self, opts=opts, conn_options=conn_options)
        self._streams.add(s)
        return s

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        # The server only streams: run a stream over the buffer and join its final transcripts.
        frames = buffer if isinstance(buffer, list) else [buffer]
        finals: list[stt.SpeechData] = []
        async with self.stream(language=language, conn_options=conn_options) as s:
            for f in frames:
                s.push_frame(f)
            s.end_input()
            async for ev in s:
                if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT and ev.alternatives:
                    finals.append(ev.alternatives[0])
        lang = language if is_given(language) else self._opts.language
        words = [w for f in finals for w in (f.words or [])]
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[
                stt.SpeechData(
                    language=LanguageCode(lang),
                    text=" ".join(f.text for f in finals),
                    start_time=finals[0].start_time if finals else 0.0,
                    end_time=finals[-1].end_time if finals else 0.0,
                    words=words or None,
                )
            ],
        )

    async def aclose(self) -> None:
        for s in list(self._streams):
            await s.aclose()
        self._streams.clear()
        await self._http.aclose()


class SpeechStream(stt.RecognizeStream):
    def __init__(self, *, stt: STT, opts: _STTOptions, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=SAMPLE_RATE)
        self._kstt = stt
        self._opts = opts
        self._unreported_audio = 0.0
        self._request_id = ""

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            self._kstt._streams.discard(self)

    def _report_usage(self) -> None:
        if self._unreported_audio <= 0.0:
            return
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.RECOGNITION_USAGE,
                request_id=self._request_id,
                recognition_usage=stt.RecognitionUsage(audio_duration=self._unreported_audio),
            )
        )
        self._unreported_audio = 0.0

    async def _run(self) -> None:
        opts = self._opts
        conn = await connection.connect(
            self._kstt._http.get(),
            [connection.endpoint(u, STT_ROUTE) for u in opts.urls],
            headers={connection.API_KEY_HEADER: opts.api_key},
            connect_timeout=self._conn_options.timeout,
        )
        self._request_id = utils.shortuuid("kyutai_stt_")
        logger.debug("STT connected to %s", connection.redact(conn.url))
        run = _Connection(self, conn.ws)
        try:
            await run.serve()
        finally:
            await conn.ws.close()
            self._report_usage()


class _Connection:
    """One websocket's worth of a stream: a sender (room audio, flushes) and a receiver."""

    def __init__(self, stream: SpeechStream, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._s = stream
        self._ws = ws
        self._opts = stream._opts
        self._tracker = TurnTracker(stream._opts.turn)
        self._timeline = AudioTimeline(SAMPLE_RATE)
        self._pending: np.ndarray = np.zeros(0, dtype=np.float32)
        self._send_lock = asyncio.Lock()
        self._closing = False
        self._marker_id = 0
        self._awaited_marker: int | None = None
        # A flush by step count: done once the server has sent this many Steps.
        self._flush_target: int | None = None
        self._first_step = asyncio.Event()
        self._steps_expected = True  # until a wait for the first Step times out
        self._flushed = asyncio.Event()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_progress = 0  # Steps when the flush timer was last armed
        self._anchored = False  # the stream's start_time is set for this connection
        # Where the last voiced sample sent ends, on the server's timeline (see flush_target).
        self._voiced_end: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The end of speech of a turn whose last words are still being flushed out: sent
        # right after its final transcript (see _emit).
        self._ended: SpeechEnded | None = None

    async def serve(self) -> None:
        send = asyncio.create_task(self._send_loop(), name="kyutai_stt_send")
        recv = asyncio.create_task(self._recv_loop(), name="kyutai_stt_recv")
        try:
            done, _ = await asyncio.wait({send, recv}, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # raise the failure, if any
            if not recv.done():
                await recv
        except BaseException:
            # the connection is lost: close the user's open turn with what was heard
            self._emit(self._tracker.abort())
            raise
        finally:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
            for t in (send, recv, *self._tasks):
                if not t.done():
                    t.cancel()
            await asyncio.gather(send, recv, *self._tasks, return_exceptions=True)

    # ---- sending ---------------------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(data)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as e:
            raise APIConnectionError("Kyutai STT connection lost while sending") from e

    async def _send_room_audio(self, pcm: np.ndarray) -> None:
        self._pending = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        n = (self._pending.size // FRAME_SIZE) * FRAME_SIZE
        if n == 0:
            return
        # whole 80 ms frames: the server steps per frame, so smaller sends gain nothing
        chunk, self._pending = self._pending[:n], self._pending[n:]
        async with self._send_lock:
            if not self._anchored:
                # anchor the stream's wall clock where its first audio began, so that room
                # times (start_time + t) date the server's word times
                self._s.start_time = time.time() - chunk.size / SAMPLE_RATE
                self._anchored = True
            await self._send(protocol.encode_audio(chunk))
            self._sent_room_audio(chunk)
        self._s._unreported_audio += chunk.size / SAMPLE_RATE
        if self._s._unreported_audio >= self._opts.usage_interval:
            self._s._report_usage()

    async def _flush(self) -> None:
        """Silence after the turn's audio, so the words still inside the model delay come out.

        When the server sends Steps (a model with pause heads), the flush is done once it has
        stepped through the turn's audio (its voiced part, with `flush_to_voice`), the model
        delay and one more step, counted in Steps as Unmute does. Only a server without Steps
        gets a Marker: Kyutai's Python STT module ends the session after echoing one."""
        if not self._tracker.steps and self._steps_expected:
            try:
                await asyncio.wait_for(self._first_step.wait(), FIRST_STEP_WAIT_S)
            except TimeoutError:
                self._steps_expected = False  # a model without pause heads
        async with self._send_lock:
            if self._pending.size:
                chunk, self._pending = self._pending, np.zeros(0, dtype=np.float32)
                await self._send(protocol.encode_audio(chunk))
                self._sent_room_audio(chunk)
                self._s._unreported_audio += chunk.size / SAMPLE_RATE
            self._flushed.clear()
            turn_frames = -(-self._timeline.server_samples // FRAME_SIZE)
            if not self._tracker.steps:
                self._marker_id += 1
                self._awaited_marker = self._marker_id
                await self._send(protocol.encode_marker(self._marker_id))
                await self._send_silence(self._opts.flush_frames)
                self._flush_progress = self._tracker.steps
                self._arm_flush_timer()
                return
            self._awaited_marker = None
            # the words of step n come after Step n: wait for the Step after the last one
            target = flush_target(
                sent_frames=turn_frames,
                delay_steps=max(self._tracker.delay_steps, DEFAULT_DELAY_STEPS),
                voiced_frames=(
                    None if self._voiced_end is None else -(-self._voiced_end // FRAME_SIZE)
                ),
                last_word_start=self._tracker.last_word_start,
                to_voice=self._opts.flush_to_voice,
            )
            # Silence steps the server at its own speed; audio already sent counts too.
            silence = (
                min(self._opts.flush_frames, max(0, target - turn_frames))
                if self._opts.flush_to_voice
                else self._opts.flush_frames
            )
            if silence:
                await self._send_silence(silence)
            self._flush_target = min(target, self._timeline.server_samples // FRAME_SIZE)
            if self._tracker.steps >= self._flush_target:
                self._on_flushed()  # every word is already out
                return
        self._flush_progress = self._tracker.steps
        self._arm_flush_timer()

    def _sent_room_audio(self, pcm: np.ndarray) -> None:
        voiced = np.flatnonzero(np.abs(pcm) >= VOICED_PEAK)
        if voiced.size:
            self._voiced_end = self._timeline.server_samples + int(voiced[-1]) + 1
        self._timeline.sent_room_audio(pcm.size)

    async def _send_silence(self, frames: int) -> None:
        silence = np.zeros(FRAME_SIZE * frames, dtype=np.float32)
        await self._send(protocol.encode_audio(silence))
        self._timeline.inserted_silence(silence.size)

    def _flush_timed_out(self) -> None:
        steps = self._tracker.steps
        if self._flush_target is not None and steps > self._flush_progress:
            # Still stepping towards the flush: a server behind (the backlog of an outage
            # replayed after a reconnect, a loaded CPU) is slow, not gone. Finalising now
            # would drop the turn's words, which are still ahead of it.
            self._flush_progress = steps
            self._arm_flush_timer()
            return
        logger.warning("Kyutai STT flush did not complete, finalising the turn anyway")
        self._on_flushed()

    def _arm_flush_timer(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        loop = asyncio.get_running_loop()
        self._flush_timer = loop.call_later(self._opts.flush_timeout, self._flush_timed_out)

    def _on_flushed(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._awaited_marker = None
        self._flush_target = None
        self._emit(self._tracker.on_flushed())
        self._flushed.set()

    async def _send_loop(self) -> None:
        # Lead with silence, as Kyutai's clients do: the model starts on a quiet frame, and
        # the pause heads' unreliable first second (the tracker's warm-up) is spent on it.
        backlog = self._take_backlog()
        async with self._send_lock:
            await self._send_silence(LEAD_SILENCE_FRAMES)
        await self._replay(backlog)
        async for item in self._s._input_ch:
            if isinstance(item, rtc.AudioFrame):
                await self._send_room_audio(protocol.frame_to_float(item))
            elif isinstance(item, stt.RecognizeStream._FlushSentinel):
                self._emit(self._tracker.request_flush())
        # end of input: finalise the last turn, then close
        self._emit(self._tracker.request_flush())
        deadline = time.monotonic() + self._opts.flush_timeout
        while self._tracker.flushing and time.monotonic() < deadline:
            self._flushed.clear()  # no await since the check: no wake-up can be missed
            try:
                await asyncio.wait_for(self._flushed.wait(), 0.2)
            except TimeoutError:
                # no more room audio will push the marker out: keep feeding silence
                async with self._send_lock:
                    await self._send_silence(self._opts.flush_frames)
        if self._tracker.flushing:
            self._on_flushed()
        self._closing = True
        await self._ws.close()

    def _take_backlog(self) -> list[np.ndarray | None]:
        """What is already queued when the connection opens: room audio (None for a flush)."""
        items: list[np.ndarray | None] = []
        while not self._s._input_ch.empty():
            item = self._s._input_ch.recv_nowait()
            if isinstance(item, rtc.AudioFrame):
                items.append(protocol.frame_to_float(item))
            elif isinstance(item, stt.RecognizeStream._FlushSentinel):
                items.append(None)
        return items

    async def _replay(self, items: list[np.ndarray | None]) -> None:
        """Send the queued audio. After a reconnect it is the outage's, and long: its quiet
        stretches are skipped (see `backlog`) so the server catches up with the room."""
        frames = [pcm for pcm in items if pcm is not None]
        durations = [pcm.size / SAMPLE_RATE for pcm in frames]
        keep = iter(backlog.keep_frames([backlog.rms(pcm) for pcm in frames], durations))
        total = sum(durations)
        if total > backlog.BACKLOG_S:
            # the backlog's first sample is `total` old: date the room timeline from there
            self._s.start_time = time.time() - total
            self._s.start_time_offset = max(0.0, self._s.start_time_offset - total)
            self._anchored = True
        skipped = 0
        for pcm in items:
            if pcm is None:
                self._emit(self._tracker.request_flush())
            elif next(keep):
                await self._send_room_audio(pcm)
            else:
                async with self._send_lock:
                    self._timeline.skipped_room_audio(pcm.size, pending=self._pending.size)
                skipped += pcm.size
        if total > backlog.BACKLOG_S:
            logger.info(
                "Kyutai STT caught up with %.1f s of room audio queued while it was "
                "unreachable: %.1f s resent, %.1f s of quiet skipped",
                total,
                total - skipped / SAMPLE_RATE,
                skipped / SAMPLE_RATE,
            )

    # ---- receiving -------------------------------------------------------------------------

    async def _recv_loop(self) -> None:
        while True:
            try:
                msg = await connection.read_message(self._ws)
            except protocol.ProtocolError as e:
                logger.warning("ignoring a malformed Kyutai STT message: %s", e)
                continue
            if msg is None:
                if self._closing:
                    return
                raise APIConnectionError(
                    f"Kyutai STT server closed the connection (code {self._ws.close_code})"
                )
            if isinstance(msg, protocol.Word):
                self._emit(self._tracker.on_word(msg.text, msg.start_time))
            elif isinstance(msg, protocol.EndWord):
                self._emit(self._tracker.on_end_word(msg.stop_time))
            elif isinstance(msg, protocol.Step):
                self._first_step.set()
                self._emit(self._tracker.on_step(msg.step_idx, msg.prs))
                if self._flush_target is not None and self._tracker.steps >= self._flush_target:
                    self._on_flushed()
            elif isinstance(msg, protocol.Marker):
                if msg.id == self._awaited_marker:
                    self._on_flushed()
            elif isinstance(msg, protocol.Error):
                raise APIStatusError(
                    f"Kyutai STT server error: {msg.message}", status_code=500, retryable=True
                )

    # ---- events ----------------------------------------------------------------------------

    def _room_time(self, server_time: float) -> float:
        return self._timeline.to_room_time(server_time)

    def _wall(self, server_time: float) -> float:
        """Wall clock of a moment of the room's audio, which arrives in real time."""
        return min(time.time(), self._s.start_time + self._room_time(server_time))

    def _speech_data(self, words: tuple[TimedWord, ...]) -> stt.SpeechData:
        offset = self._s.start_time_offset
        timed = [
            TimedString(
                w.text,
                start_time=self._room_time(w.start_time) + offset,
                end_time=self._room_time(w.end_time if w.end_time is not None else w.start_time)
                + offset,
                start_time_offset=offset,
            )
            for w in words
        ]
        return stt.SpeechData(
            language=LanguageCode(self._opts.language),
            text=" ".join(w.text for w in words),
            start_time=timed[0].start_time if timed else offset,  # type: ignore[arg-type]
            end_time=timed[-1].end_time if timed else offset,  # type: ignore[arg-type]
            confidence=1.0,
            words=timed,
        )

    def _emit(self, events: list[TurnEvent]) -> None:
        ch = self._s._event_ch
        rid = self._s._request_id
        for ev in events:
            if isinstance(ev, SpeechStarted):
                ch.send_nowait(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.START_OF_SPEECH,
                        request_id=rid,
                        speech_start_time=self._wall(ev.start_time),
                    )
                )
            elif isinstance(ev, TranscriptUpdated):
                ch.send_nowait(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                        request_id=rid,
                        alternatives=[self._speech_data(ev.words)],
                    )
                )
            elif isinstance(ev, SpeechEnded):
                # Held until the turn's FINAL_TRANSCRIPT, and sent right after it. With
                # turn_detection="stt", LiveKit commits the turn on END_OF_SPEECH once it has a
                # final transcript and the user is not speaking; an END_OF_SPEECH sent before
                # the flush brings the final out leaves the turn half-committed, and a user
                # who resumes in that gap got a reply to the first half, then another.
                self._ended = ev
            elif isinstance(ev, FlushNeeded):
                if not self._closing:
                    task = asyncio.create_task(self._flush_guarded(), name="kyutai_stt_flush")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            elif isinstance(ev, TurnFinished):
                data = self._speech_data(ev.words)
                ch.send_nowait(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                        request_id=rid,
                        alternatives=[data],
                        speech_end_time=self._wall(ev.end_time),
                    )
                )
                if self._ended is not None:
                    ch.send_nowait(
                        stt.SpeechEvent(
                            type=stt.SpeechEventType.END_OF_SPEECH,
                            request_id=rid,
                            speech_end_time=self._wall(self._ended.end_time),
                        )
                    )
                    self._ended = None
                self._s._report_usage()

    async def _flush_guarded(self) -> None:
        try:
            await self._flush()
        except APIConnectionError:
            # the receiver sees the same loss and ends the connection
            logger.debug("Kyutai STT flush failed: connection lost")
