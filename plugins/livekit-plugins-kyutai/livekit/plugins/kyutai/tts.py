"""Kyutai streaming-in-text TTS: whole words in as the LLM writes them, 80 ms frames and word
timings out, over a socket that was opened (and given a slot) before the turn began."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    tts,
    utils,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr, TimedString
from livekit.agents.utils import is_given

from . import connection, protocol
from .log import logger
from .models import DEFAULT_TTS_URL, DEFAULT_VOICE, NUM_CHANNELS, SAMPLE_RATE, TTS_ROUTE, TTSVoices
from .text import (
    AlignedWord,
    TranscriptAligner,
    WordChunker,
    clean_display,
    language_of_voice,
    normalize_word,
)

TTS_URL_ENV = "KYUTAI_TTS_URL"
# What a reply with nothing to say plays: one 80 ms frame of silence.
SILENCE_SAMPLES = SAMPLE_RATE * 2 // 25


@dataclass
class _TTSOptions:
    urls: list[str]
    api_key: str
    voice: str
    language: str
    cfg_alpha: float | None
    normalize: bool

    def query(self) -> dict[str, str]:
        q = {"voice": self.voice, "format": "PcmMessagePack"}
        if self.cfg_alpha is not None:
            q["cfg_alpha"] = f"{self.cfg_alpha:g}"
        return q

    def key(self) -> tuple[object, ...]:
        """What a socket is bound to at its handshake."""
        return (tuple(self.urls), self.api_key, self.voice, self.cfg_alpha)


class TTS(tts.TTS):
    def __init__(
        self,
        *,
        url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        voice: TTSVoices | str = DEFAULT_VOICE,
        language: str | None = None,
        cfg_alpha: float | None = None,
        normalize: bool = True,
        preconnect: bool = True,
        max_idle: float = 60.0,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Kyutai streaming TTS (kyutai/tts-1.6b-en_fr behind a moshi-server-compatible
        ``/api/tts_streaming``).

        Args:
            url: server URL, a comma separated string or a list tried in order when one has no
                free channels. Defaults to ``$KYUTAI_TTS_URL``. ``/api/tts_streaming`` is
                appended to URLs without a path.
            api_key: sent as the ``kyutai-api-key`` header; defaults to ``$KYUTAI_API_KEY`` or
                ``public_token``.
            voice: a voice path in the kyutai/tts-voices layout.
            language: "en" or "fr", how numbers and symbols are read; by default the voice's.
            cfg_alpha: classifier-free guidance strength, sent only when set (the server's
                default applies otherwise).
            normalize: rewrite markdown, emoji, URLs, symbols and numbers into spoken words.
            preconnect: keep one socket connected with its slot assigned, so that a turn never
                waits for a handshake. It holds one server slot between turns; a turn uses
                that one, and the next is connected when the turn is done.
            max_idle: seconds after which an idle pre-connected socket is replaced (the server
                drops clients that send nothing for ~120 s).
            http_session: aiohttp session to use; the job's shared session by default.
        """
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=True),
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
        )
        self._language_explicit = language is not None
        self._opts = _TTSOptions(
            urls=connection.resolve_urls(url, TTS_URL_ENV, DEFAULT_TTS_URL),
            api_key=connection.resolve_api_key(api_key),
            voice=voice,
            language=language or language_of_voice(voice),
            cfg_alpha=cfg_alpha,
            normalize=normalize,
        )
        self._http = connection.HttpSessions(http_session)
        self._pool = _Preconnector(self._connect, enabled=preconnect, max_idle=max_idle)
        self._streams: weakref.WeakSet[SynthesizeStream] = weakref.WeakSet()

    @property
    def model(self) -> str:
        return "kyutai-tts"

    @property
    def provider(self) -> str:
        return "kyutai"

    @property
    def voice(self) -> str:
        return self._opts.voice

    @property
    def language(self) -> str:
        return self._opts.language

    async def _connect(self, opts: _TTSOptions, connect_timeout: float) -> connection.Connected:
        return await connection.connect(
            self._http.get(),
            [connection.endpoint(u, TTS_ROUTE, opts.query()) for u in opts.urls],
            headers={connection.API_KEY_HEADER: opts.api_key},
            connect_timeout=connect_timeout,
        )

    def update_options(
        self,
        *,
        voice: NotGivenOr[TTSVoices | str] = NOT_GIVEN,
        language: NotGivenOr[str] = NOT_GIVEN,
        cfg_alpha: NotGivenOr[float | None] = NOT_GIVEN,
    ) -> None:
        """Change the voice (and its language) for the following turns. A pre-connected
        socket with the old voice is closed and replaced."""
        opts = dataclasses.replace(self._opts)
        if is_given(voice):
            opts.voice = voice
            if not self._language_explicit:
                opts.language = language_of_voice(voice)
        if is_given(language):
            opts.language = language
            self._language_explicit = True
        if is_given(cfg_alpha):
            opts.cfg_alpha = cfg_alpha
        changed = opts.key() != self._opts.key()
        self._opts = opts
        if changed:
            self._pool.invalidate(refill=opts)

    def prewarm(self) -> None:
        self._pool.refill(self._opts)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChunkedStream:
        opts = dataclasses.replace(self._opts)
        return ChunkedStream(tts=self, input_text=text, opts=opts, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> SynthesizeStream:
        opts = dataclasses.replace(self._opts)
        s = SynthesizeStream(tts=self, opts=opts, conn_options=conn_options)
        self._streams.add(s)
        return s

    async def aclose(self) -> None:
        for s in list(self._streams):
            await s.aclose()
        self._streams.clear()
        await self._pool.aclose()
        await self._http.aclose()


class SynthesizeStream(tts.SynthesizeStream):
    def __init__(self, *, tts: TTS, opts: _TTSOptions, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._ktts = tts
        self._opts = opts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        request_id = utils.shortuuid()
        output_emitter.initialize(
            request_id=request_id,
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
            mime_type="audio/pcm",
            stream=True,
        )
        sock, reused, acquire_time = await self._ktts._pool.acquire(
            self._opts, self._conn_options.timeout
        )
        self._acquire_time, self._connection_reused = acquire_time, reused
        output_emitter.start_segment(segment_id=request_id)

        async def words() -> AsyncIterator[str]:
            chunker = WordChunker()
            async for item in self._input_ch:
                if isinstance(item, str):
                    for w in chunker.push(item):
                        yield w
                else:
                    break  # the framework uses one stream per segment: a flush ends it
            for w in chunker.flush():
                yield w

        try:
            await _speak(
                sock, self._opts, words(), output_emitter, on_first_send=self._mark_started
            )
        finally:
            self._ktts._pool.release(self._opts)
        output_emitter.end_segment()


class ChunkedStream(tts.ChunkedStream):
    def __init__(
        self, *, tts: TTS, input_text: str, opts: _TTSOptions, conn_options: APIConnectOptions
    ) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._ktts = tts
        self._opts = opts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=SAMPLE_RATE,
            num_channels=NUM_CHANNELS,
            mime_type="audio/pcm",
        )
        sock, reused, acquire_time = await self._ktts._pool.acquire(
            self._opts, self._conn_options.timeout
        )
        self._acquire_time, self._connection_reused = acquire_time, reused

        async def words() -> AsyncIterator[str]:
            chunker = WordChunker()
            for w in [*chunker.push(self._input_text), *chunker.flush()]:
                yield w

        try:
            await _speak(sock, self._opts, words(), output_emitter, on_first_send=None)
        finally:
            self._ktts._pool.release(self._opts)
        output_emitter.flush()


async def _speak(
    sock: _Socket,
    opts: _TTSOptions,
    words: AsyncIterator[str],
    emitter: tts.AudioEmitter,
    *,
    on_first_send: Callable[[], None] | None,
) -> None:
    """Send words as they come, then Eos; push audio and timed words until the server closes.
    The socket is closed on the way out whatever happens, which frees the server slot at once
    when the stream is interrupted."""
    ws = sock.ws
    aligner = TranscriptAligner()
    eos_sent = False
    # Nothing speakable in the whole text ("...", an emoji): the server is told nothing (Kyutai's
    # server closes without audio after an Eos alone) and a moment of silence stands for the
    # reply, so the framework sees audio and neither retries nor reports an error.
    nothing_to_say = False

    def push_words(aligned: list[AlignedWord]) -> None:
        for w in aligned:
            emitter.push_timed_transcript(
                TimedString(
                    w.text + " ",
                    start_time=w.start_time if w.start_time is not None else NOT_GIVEN,
                    end_time=w.end_time if w.end_time is not None else NOT_GIVEN,
                )
            )

    async def send() -> None:
        nonlocal eos_sent, nothing_to_say
        first = True
        try:
            async for word in words:
                display = clean_display(word)
                spoken = normalize_word(word, opts.language) if opts.normalize else display
                if not spoken.split():
                    continue
                aligner.expect(display or spoken, len(spoken.split()))
                if first and on_first_send is not None:
                    on_first_send()
                first = False
                await ws.send_bytes(protocol.encode_text(spoken))
            if first:
                nothing_to_say = True
                await sock.close()  # frees the server's slot; the reader then ends
                return
            eos_sent = True
            await ws.send_bytes(protocol.encode_eos())
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as e:
            raise APIConnectionError("Kyutai TTS connection lost while sending") from e

    async def recv() -> None:
        while True:
            msg = await sock.queue.get()
            if msg is None:
                if eos_sent or nothing_to_say:
                    return  # the server closes once it has spoken everything
                raise APIConnectionError(
                    f"Kyutai TTS server closed the connection (code {ws.close_code})"
                )
            if isinstance(msg, protocol.Audio):
                if msg.pcm.size:
                    emitter.push(protocol.float_to_pcm16(msg.pcm))
            elif isinstance(msg, protocol.Text):
                push_words(aligner.on_spoken(msg.text, msg.start_s, msg.stop_s))
            elif isinstance(msg, protocol.Error):
                if msg.bad_voice:
                    # a typo in a voice name: say so once, do not retry it in a loop
                    logger.error("Kyutai TTS voice %r refused: %s", opts.voice, msg.message)
                    raise APIStatusError(
                        f"Kyutai TTS server error: {msg.message} (voice {opts.voice!r})",
                        status_code=404,
                        retryable=False,
                    )
                raise APIStatusError(
                    f"Kyutai TTS server error: {msg.message}",
                    status_code=503 if msg.at_capacity else 500,
                    retryable=True,
                )

    send_task = asyncio.create_task(send(), name="kyutai_tts_send")
    recv_task = asyncio.create_task(recv(), name="kyutai_tts_recv")
    try:
        done, _ = await asyncio.wait({send_task, recv_task}, return_when=asyncio.FIRST_EXCEPTION)
        if send_task in done and send_task.exception() is not None and not recv_task.done():
            # A write failed because the server closed: its Error, if it sent one, says why.
            await asyncio.wait({recv_task}, timeout=1.0)
            if recv_task.done() and recv_task.exception() is not None:
                recv_task.result()
        for t in done:
            t.result()
        await recv_task
        if nothing_to_say:
            emitter.push(bytes(2 * NUM_CHANNELS * SILENCE_SAMPLES))
        push_words(aligner.flush())
    finally:
        for t in (send_task, recv_task):
            t.cancel()
        await sock.close()
        await asyncio.gather(send_task, recv_task, return_exceptions=True)


# an idle socket that the server closed sooner than this is not replaced in the background
_MIN_LIFETIME_FOR_REFILL = 5.0


class _Socket:
    """A connected TTS socket with its own reader task, started at once: an idle socket must
    be read so that the server's pings are answered, and handing the socket to a stream never
    interrupts a read (the stream consumes ``queue``)."""

    def __init__(self, conn: connection.Connected, key: tuple[object, ...]) -> None:
        self.conn = conn
        self.ws = conn.ws
        self.key = key
        self.created = time.monotonic()
        self.queue: asyncio.Queue[protocol.Message | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read(), name="kyutai_tts_reader")

    async def _read(self) -> None:
        try:
            while True:
                try:
                    msg = await connection.read_message(self.ws)
                except protocol.ProtocolError as e:
                    logger.warning("ignoring a malformed Kyutai TTS message: %s", e)
                    continue
                self.queue.put_nowait(msg)
                if msg is None:
                    return
        except Exception as e:
            logger.debug("Kyutai TTS socket read failed: %s", e)
            self.queue.put_nowait(None)

    @property
    def alive(self) -> bool:
        return not self.reader.done() and not self.ws.closed

    async def close(self) -> None:
        # the reader sees the close and ends by itself
        await self.ws.close()


class _Preconnector:
    """Keeps one socket connected (Ready received, slot assigned) for the next turn.

    Kyutai TTS sockets serve one utterance each, so this is not a reuse pool: a socket is taken
    once, and releasing it when its utterance is done starts connecting its successor. An idle
    socket that the server closes, or that ages past ``max_idle``, is dropped (and replaced); a
    stale socket is never handed out.
    """

    def __init__(
        self,
        connect: Callable[[_TTSOptions, float], Awaitable[connection.Connected]],
        *,
        enabled: bool,
        max_idle: float,
        connect_timeout: float = 10.0,
    ) -> None:
        self._connect = connect
        self._enabled = enabled
        self._max_idle = max_idle
        self._connect_timeout = connect_timeout
        self._warm: _Socket | None = None
        self._warm_opts: _TTSOptions | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._connecting_key: tuple[object, ...] | None = None
        self._closed = False
        self._bg: set[asyncio.Task[None]] = set()

    @property
    def has_warm(self) -> bool:
        return self._warm is not None and self._warm.alive

    def _take_warm(self) -> _Socket | None:
        warm, self._warm = self._warm, None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        return warm

    async def acquire(
        self, opts: _TTSOptions, connect_timeout: float
    ) -> tuple[_Socket, bool, float]:
        """Returns (socket, reused a pre-connected one, seconds spent acquiring)."""
        t0 = time.perf_counter()
        key = opts.key()
        if self._warm is None and self._connecting is not None and self._connecting_key == key:
            # a socket for these options is on its way: it is at least as fast as a new one
            await asyncio.wait({self._connecting}, timeout=connect_timeout)
        sock = self._take_warm()
        if sock is not None and not (sock.alive and sock.key == key):
            self._spawn(sock.close())
            sock = None
        reused = sock is not None
        if sock is None:
            sock = _Socket(await self._connect(opts, connect_timeout), key)
        # the successor is connected when this socket is done (`release`), not now: a
        # conversation then holds one server slot, not two while it speaks
        return sock, reused, time.perf_counter() - t0

    def release(self, opts: _TTSOptions) -> None:
        """A stream is done with its socket: have the next turn's one ready."""
        self.refill(opts)

    def _spawn(self, coro: Awaitable[object]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def refill(self, opts: _TTSOptions) -> None:
        if not self._enabled or self._closed:
            return
        key = opts.key()
        if self._connecting is not None and not self._connecting.done():
            if self._connecting_key == key:
                return
            # a handshake for old options is not cancelled (that could strand a half-open
            # socket on the server): it completes and closes itself, as its key is stale
        if self._warm is not None and self._warm.key == key and self._warm.alive:
            return
        self._connecting_key = key
        self._connecting = asyncio.create_task(self._fill(opts, key), name="kyutai_tts_preconnect")
        self._bg.add(self._connecting)
        self._connecting.add_done_callback(self._bg.discard)

    async def _fill(self, opts: _TTSOptions, key: tuple[object, ...]) -> None:
        try:
            conn = await self._connect(opts, self._connect_timeout)
        except Exception as e:
            # not fatal: the next turn connects on demand (and reports the error if it persists)
            logger.debug("Kyutai TTS pre-connection failed: %s", e)
            return
        if self._closed or key != self._connecting_key:
            await conn.ws.close()
            return
        old = self._take_warm()
        if old is not None:
            self._spawn(old.close())
        sock = _Socket(conn, key)
        self._warm, self._warm_opts = sock, opts
        self._idle_timer = asyncio.get_running_loop().call_later(
            self._max_idle, self._retire_idle, sock
        )
        sock.reader.add_done_callback(lambda _: self._on_warm_closed(sock))

    def _retire_idle(self, sock: _Socket) -> None:
        if self._warm is sock:
            logger.debug("replacing a Kyutai TTS socket idle for %ss", self._max_idle)
            self._spawn(sock.close())  # its reader ends, which refills

    def _on_warm_closed(self, sock: _Socket) -> None:
        if self._warm is not sock:
            return  # taken by a stream, or replaced
        self._take_warm()
        opts = self._warm_opts
        # replace the stale socket, unless the server closes them right away (no busy loop)
        lived = time.monotonic() - sock.created
        if opts is not None and lived >= _MIN_LIFETIME_FOR_REFILL and not self._closed:
            self.refill(opts)

    def invalidate(self, *, refill: _TTSOptions | None = None) -> None:
        """Options changed: the idle socket carries the old ones."""
        old = self._take_warm()
        was_active = old is not None or (
            self._connecting is not None and not self._connecting.done()
        )
        self._connecting_key = None  # an in-flight handshake closes its socket when done
        if old is not None:
            self._spawn(old.close())
        if refill is not None and was_active:
            self.refill(refill)

    async def aclose(self) -> None:
        self._closed = True
        old = self._take_warm()
        if old is not None:
            await old.close()
        # handshakes in flight finish (bounded by the connect timeout) and close themselves
        if self._bg:
            await asyncio.gather(*list(self._bg), return_exceptions=True)
