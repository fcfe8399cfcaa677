"""kyutai.STT and kyutai.TTS against the real inference server with tiny random models.

Tiny models babble, so these tests check mechanics (event order, timings, usage, failover,
reconnection, slots, metrics), not words. Audio is fed on a wall-clock schedule like a microphone.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, APIStatusError, stt, tts
from livekit.agents.metrics import STTMetrics, TTSMetrics
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
from livekit.agents.utils import is_given
from livekit.plugins import kyutai

from harness.inference_server import InferenceServer, start_inference_server
from harness.speech import read_wav, speech_wav

SR = 24000


def slots(http_url: str, engine: str, gauge: str = "kyutai_slots_open") -> float:
    """A slot gauge from the server's Prometheus /metrics."""
    with urllib.request.urlopen(f"{http_url}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    m = re.search(rf'^{gauge}\{{engine="{engine}"\}} ([0-9.e+-]+)$', text, re.M)
    assert m is not None, f"{gauge} for {engine} not in /metrics"
    return float(m.group(1))


def counter(http_url: str, name: str, engine: str) -> float:
    with urllib.request.urlopen(f"{http_url}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    m = re.search(rf'^{name}(?:_total)?\{{engine="{engine}"\}} ([0-9.e+-]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


async def wait_metric(http_url: str, engine: str, value: float, timeout: float = 5.0) -> float:
    """Seconds until the open-slot gauge reads ``value`` (polls the endpoint back to back)."""
    t0 = time.perf_counter()
    while True:
        now = await asyncio.to_thread(slots, http_url, engine)
        if now == value:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{engine} open slots stayed at {now}, wanted {value}")


def spoken_fixture(text: str, *, trail_silence_s: float = 2.5) -> np.ndarray:
    """espeak-ng speech as 24 kHz int16."""
    pcm, sr = read_wav(speech_wav(text, trail_silence_s=trail_silence_s))
    assert sr == SR
    return (np.clip(pcm, -1, 1) * 32767).astype(np.int16)


def frames(pcm: np.ndarray, ms: int = 20) -> list[rtc.AudioFrame]:
    step = SR * ms // 1000
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), SR, 1, step)
        for i in range(0, pcm.size - step + 1, step)
    ]


async def paced(audio: list[rtc.AudioFrame], speed: float = 1.0) -> AsyncIterator[rtc.AudioFrame]:
    """Yield frames on a wall-clock schedule, as a microphone would (a source, not a wait)."""
    t0 = time.perf_counter()
    elapsed = 0.0
    for f in audio:
        due = t0 + elapsed / speed
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield f
        elapsed += f.duration


class TcpProxy:
    """Forwards 127.0.0.1:port to a backend that can be swapped, so a client keeps one URL
    while the server behind it is restarted."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port: int | None = backend_port
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.backend_port is None:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def plugin_tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kyutai-tiny-plugin")


@pytest.fixture(scope="module")
def server(plugin_tiny_cache: Path) -> Iterator[InferenceServer]:
    with start_inference_server(plugin_tiny_cache, batch_size=2) as srv:
        yield srv


NO_RETRY = APIConnectOptions(max_retry=0, timeout=10.0)
SENTENCE = "Hello there, how are you today?"


def kinds(events: list[stt.SpeechEvent]) -> list[str]:
    return [e.type.name for e in events if e.type != stt.SpeechEventType.RECOGNITION_USAGE]


async def feed(stream: stt.RecognizeStream, audio: list[rtc.AudioFrame], speed: float) -> None:
    async for f in paced(audio, speed):
        stream.push_frame(f)


async def events_until(
    stream: stt.RecognizeStream, n_finals: int, timeout: float = 30.0
) -> list[stt.SpeechEvent]:
    events: list[stt.SpeechEvent] = []

    async def run() -> None:
        finals = 0
        async for ev in stream:
            events.append(ev)
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                finals += 1
            elif ev.type == stt.SpeechEventType.END_OF_SPEECH and finals >= n_finals:
                return  # a turn's END_OF_SPEECH follows its FINAL_TRANSCRIPT

    await asyncio.wait_for(run(), timeout)
    return events


def check_turn_mechanics(events: list[stt.SpeechEvent]) -> None:
    """START, cumulative INTERIMs, a FINAL carrying the whole turn with timings, then END (the
    end of speech follows the final transcript: LiveKit commits the turn on it)."""
    k = kinds(events)
    assert k[0] == "START_OF_SPEECH", k
    first_final = k.index("FINAL_TRANSCRIPT")
    turn = k[: first_final + 2]
    assert "INTERIM_TRANSCRIPT" in turn and turn[-1] == "END_OF_SPEECH", turn
    assert turn.count("START_OF_SPEECH") == 1 and turn.count("END_OF_SPEECH") == 1
    speech = [e for e in events if e.type != stt.SpeechEventType.RECOGNITION_USAGE]
    interims = [
        e.alternatives[0].text
        for e in speech[: first_final + 1]
        if e.type == stt.SpeechEventType.INTERIM_TRANSCRIPT
    ]
    for a, b in itertools.pairwise(interims):
        assert b.startswith(a), (a, b)  # cumulative hypothesis
    final = speech[first_final]
    data = final.alternatives[0]
    assert data.text and data.text == interims[-1]
    assert data.words is not None and " ".join(data.words) == data.text
    starts = [w.start_time for w in data.words]
    assert starts == sorted(starts)
    assert 0.0 <= data.start_time <= data.end_time
    start = speech[0]
    end = speech[turn.index("END_OF_SPEECH")]
    assert start.speech_start_time is not None and end.speech_end_time is not None
    assert start.speech_start_time <= end.speech_end_time <= end.created_at


# --- STT ----------------------------------------------------------------------------------


async def test_stt_event_sequence_and_usage(server: InferenceServer) -> None:
    metrics: list[STTMetrics] = []
    model = kyutai.STT(url=server.url)
    model.on("metrics_collected", lambda m: metrics.append(m))
    stream = model.stream(conn_options=NO_RETRY)
    audio = frames(spoken_fixture(SENTENCE))
    feeder = asyncio.create_task(feed(stream, audio, speed=2.0))
    events = await events_until(stream, 1)
    check_turn_mechanics(events)
    await feeder
    stream.end_input()
    events += [ev async for ev in stream]
    fed = sum(f.duration for f in audio)
    usage = sum(
        e.recognition_usage.audio_duration
        for e in events
        if e.type == stt.SpeechEventType.RECOGNITION_USAGE and e.recognition_usage
    )
    assert usage == pytest.approx(fed, abs=0.09)  # all room audio, not the flush silence
    assert sum(m.audio_duration for m in metrics) == pytest.approx(usage)
    # every turn that started was closed
    k = kinds(events)
    assert k.count("START_OF_SPEECH") == k.count("END_OF_SPEECH") == k.count("FINAL_TRANSCRIPT")
    await model.aclose()


async def test_stt_bad_key(server: InferenceServer) -> None:
    model = kyutai.STT(url=server.url, api_key="not-a-key")
    stream = model.stream(conn_options=APIConnectOptions(max_retry=3, retry_interval=0.05))
    with pytest.raises(APIStatusError) as err:
        await events_until(stream, 1, timeout=10)
    assert err.value.status_code == 401 and not err.value.retryable
    assert "kyutai-api-key" in err.value.message
    await model.aclose()


async def test_stt_fails_over_when_the_first_server_is_full(
    server: InferenceServer, plugin_tiny_cache: Path
) -> None:
    full = await asyncio.to_thread(start_inference_server, plugin_tiny_cache, batch_size=1)
    try:
        async with aiohttp.ClientSession() as http:
            # take the only slot of the first server
            hog = await http.ws_connect(
                f"{full.url}/api/asr-streaming", headers={"kyutai-api-key": full.api_key}
            )
            assert (await hog.receive()).type == aiohttp.WSMsgType.BINARY  # Ready
            assert slots(full.http_url, "stt") == 1
            rejected = counter(full.http_url, "kyutai_rejected", "stt")
            base = slots(server.http_url, "stt")

            model = kyutai.STT(url=[full.url, server.url])
            stream = model.stream(conn_options=NO_RETRY)
            feeder = asyncio.create_task(feed(stream, frames(spoken_fixture(SENTENCE)), 2.0))
            events = await events_until(stream, 1)
            check_turn_mechanics(events)
            assert counter(full.http_url, "kyutai_rejected", "stt") == rejected + 1
            assert slots(server.http_url, "stt") == base + 1
            feeder.cancel()
            await stream.aclose()
            await model.aclose()
            await hog.close()
    finally:
        await asyncio.to_thread(full.stop)


async def test_stt_recovers_after_the_server_restarts(plugin_tiny_cache: Path) -> None:
    first = await asyncio.to_thread(start_inference_server, plugin_tiny_cache, batch_size=2)
    proxy = await TcpProxy(first.port).start()
    second: InferenceServer | None = None
    errors: list[object] = []
    try:
        model = kyutai.STT(url=proxy.url)
        model.on("error", errors.append)
        # generous retries: a restart reloads the models
        stream = model.stream(
            conn_options=APIConnectOptions(max_retry=30, retry_interval=1.0, timeout=5.0)
        )
        speech = frames(spoken_fixture(SENTENCE))
        feeder = asyncio.create_task(feed(stream, speech * 20, speed=1.0))
        before = await events_until(stream, 1)
        check_turn_mechanics(before)

        proxy.backend_port = None
        await asyncio.to_thread(first.stop)  # drops the live connection
        second = await asyncio.to_thread(start_inference_server, plugin_tiny_cache, batch_size=2)
        proxy.backend_port = second.port
        after = await events_until(stream, 1, timeout=60)
        # the turn cut by the restart was closed, and a new turn went through the new server
        assert "FINAL_TRANSCRIPT" in kinds(after)
        assert slots(second.http_url, "stt") == 1
        assert errors and all(getattr(e, "recoverable", False) for e in errors)
        feeder.cancel()
        await stream.aclose()
        await model.aclose()
    finally:
        await proxy.stop()
        await asyncio.to_thread(first.stop)
        if second is not None:
            await asyncio.to_thread(second.stop)


# --- TTS ----------------------------------------------------------------------------------


async def collect_tts(stream: tts.SynthesizeStream) -> tuple[np.ndarray, list[object]]:
    pcm: list[np.ndarray] = []
    timed: list[object] = []
    async for ev in stream:
        pcm.append(np.frombuffer(ev.frame.data, dtype=np.int16))
        timed += ev.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])
    return np.concatenate(pcm), timed


async def test_tts_streamed_sentence_audio_words_and_ttfb(server: InferenceServer) -> None:
    metrics: list[TTSMetrics] = []
    model = kyutai.TTS(url=server.url, preconnect=False)
    model.on("metrics_collected", lambda m: metrics.append(m))
    stream = model.stream(conn_options=NO_RETRY)
    for piece in ["The quick", " brown fox", " jumps over 2 lazy", " dogs."]:
        stream.push_text(piece)
    stream.end_input()
    pcm, timed = await asyncio.wait_for(collect_tts(stream), 60)
    await stream.aclose()
    assert pcm.size > SR // 2
    assert float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 30  # not silence
    words = [str(t).strip() for t in timed]
    assert words == ["The", "quick", "brown", "fox", "jumps", "over", "2", "lazy", "dogs."]
    # words the server spoke carry their audio times; a sampled tiny model may stop early,
    # and words it never spoke come last, untimed
    spans = [(t.start_time, t.end_time) for t in timed]  # type: ignore[attr-defined]
    timed_spans = [sp for sp in spans if is_given(sp[0])]
    assert len(timed_spans) >= 3 and spans[: len(timed_spans)] == timed_spans
    assert timed_spans == sorted(timed_spans) and all(b >= a for a, b in timed_spans)
    assert len(metrics) == 1 and 0 < metrics[0].ttfb < 30
    assert metrics[0].audio_duration > 0.5
    await model.aclose()


@pytest.mark.parametrize("text", ["...", "😀", "—"])
async def test_tts_reply_with_nothing_to_say_is_no_error_and_no_stall(
    server: InferenceServer, text: str
) -> None:
    errors: list[object] = []
    model = kyutai.TTS(url=server.url, preconnect=False)
    model.on("error", errors.append)
    stream = model.stream(conn_options=NO_RETRY)
    stream.push_text(text)
    stream.end_input()
    pcm, timed = await asyncio.wait_for(collect_tts(stream), 10)
    await stream.aclose()
    assert pcm.size > 0 and not pcm.any() and timed == [] and errors == []
    await wait_metric(server.http_url, "tts", 0.0)  # no slot left held
    await model.aclose()


async def test_tts_unknown_voice_is_a_clear_error_asked_once(server: InferenceServer) -> None:
    model = kyutai.TTS(url=server.url, voice="expresso/no-such-voice.wav", preconnect=False)
    stream = model.stream(conn_options=APIConnectOptions(max_retry=3, retry_interval=0.01))
    stream.push_text("Hello.")
    stream.end_input()
    with pytest.raises(APIStatusError) as err:
        await asyncio.wait_for(collect_tts(stream), 10)
    assert err.value.status_code == 404 and not err.value.retryable
    assert "unknown voice" in err.value.message
    await stream.aclose()
    await model.aclose()


async def test_tts_interruption_frees_the_slot_within_100ms(server: InferenceServer) -> None:
    base = slots(server.http_url, "tts")
    model = kyutai.TTS(url=server.url, preconnect=False)
    stream = model.stream(conn_options=NO_RETRY)
    stream.push_text("This is a rather long sentence that will be interrupted very early on. ")
    first_audio = asyncio.Event()

    async def consume() -> None:
        async for _ in stream:
            first_audio.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(first_audio.wait(), 30)
    assert slots(server.http_url, "tts") == base + 1
    t0 = time.perf_counter()
    await stream.aclose()
    await wait_metric(server.http_url, "tts", base, timeout=2.0)
    freed_after = time.perf_counter() - t0
    assert freed_after < 0.1, f"slot freed after {freed_after * 1000:.0f} ms"
    consumer.cancel()
    await model.aclose()


async def test_tts_preconnected_socket_serves_the_next_turn(server: InferenceServer) -> None:
    base = slots(server.http_url, "tts")
    metrics: list[TTSMetrics] = []
    model = kyutai.TTS(url=server.url)
    model.on("metrics_collected", lambda m: metrics.append(m))
    model.prewarm()
    await wait_metric(server.http_url, "tts", base + 1)
    for text in ["The first turn of this answer.", "And here is the second turn."]:
        stream = model.stream(conn_options=NO_RETRY)
        stream.push_text(text)
        first_audio = await asyncio.wait_for(anext(aiter(stream)), 60)
        assert first_audio.frame.samples_per_channel > 0
        # while it speaks, the turn holds the pre-connected slot and no second one
        assert slots(server.http_url, "tts") == base + 1
        stream.end_input()
        await asyncio.wait_for(collect_tts(stream), 60)
        await stream.aclose()
    assert [m.connection_reused for m in metrics] == [True, True]
    assert all(m.acquire_time < 0.05 for m in metrics)
    await wait_metric(server.http_url, "tts", base + 1)  # the next one is already waiting
    await model.aclose()
    await wait_metric(server.http_url, "tts", base)


async def test_tts_synthesize_and_voice_change(server: InferenceServer) -> None:
    model = kyutai.TTS(url=server.url, preconnect=False)
    frame = await asyncio.wait_for(
        model.synthesize("Bonjour.", conn_options=NO_RETRY).collect(), 60
    )
    assert frame.sample_rate == SR and frame.duration > 0.1
    model.update_options(voice="cml-tts/fr/2114_1656_000001-0001.wav")
    assert model.language == "fr"
    frame = await asyncio.wait_for(
        model.synthesize("J'ai 21 ans.", conn_options=NO_RETRY).collect(), 60
    )
    assert frame.duration > 0.1
    await model.aclose()
