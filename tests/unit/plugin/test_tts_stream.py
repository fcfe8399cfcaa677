"""kyutai.TTS stream mechanics against a scripted fake server: word release, normalisation,
timed transcripts, pre-connection, voice changes, interruption."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit.agents import APIConnectOptions, APIStatusError, tts
from livekit.agents.metrics import TTSMetrics
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
from livekit.plugins import kyutai

from .fake_server import FakeKyutai

FAST = APIConnectOptions(max_retry=0, timeout=2.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeKyutai]:
    fake = await FakeKyutai().start()
    yield fake
    await fake.stop()


async def drain(stream: tts.SynthesizeStream) -> tuple[np.ndarray, list[object]]:
    pcm: list[np.ndarray] = []
    timed: list[object] = []
    async for ev in stream:
        pcm.append(np.frombuffer(ev.frame.data, dtype=np.int16))
        timed += ev.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])
    return (np.concatenate(pcm) if pcm else np.zeros(0, np.int16)), timed


async def test_streamed_text_becomes_normalised_words_with_timings(server: FakeKyutai) -> None:
    metrics: list[TTSMetrics] = []
    model = kyutai.TTS(url=server.url, preconnect=False)
    model.on("metrics_collected", lambda m: metrics.append(m))
    stream = model.stream(conn_options=FAST)
    for piece in ["Hel", "lo wor", "ld, it co", "sts $5", ".", " **Bye** 👋"]:
        stream.push_text(piece)
    stream.end_input()
    pcm, timed = await drain(stream)
    await stream.aclose()
    assert server.tts_texts == [
        ["Hello", "world,", "it", "costs", "five", "dollars.", "Bye"],
    ]
    assert np.abs(pcm).max() > 1000
    assert pcm.size == 7 * 2 * 1920
    # the transcript shows what the LLM wrote, timed by the audio
    assert [str(t) for t in timed] == ["Hello ", "world, ", "it ", "costs ", "$5. ", "Bye "]
    starts = [t.start_time for t in timed]  # type: ignore[attr-defined]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert timed[4].end_time == pytest.approx(6 * 0.16)  # type: ignore[attr-defined]
    assert len(metrics) == 1 and metrics[0].ttfb > 0
    await model.aclose()


async def test_word_released_before_the_segment_ends(server: FakeKyutai) -> None:
    model = kyutai.TTS(url=server.url, preconnect=False)
    stream = model.stream(conn_options=FAST)
    stream.push_text("Yes.")
    # "Yes." must reach the server without any more text or a flush
    await server.wait_for(lambda: server.tts_texts and server.tts_texts[0] == ["Yes."])
    stream.end_input()
    await drain(stream)
    await stream.aclose()
    await model.aclose()


async def test_preconnected_socket_is_used_and_replaced(server: FakeKyutai) -> None:
    metrics: list[TTSMetrics] = []
    model = kyutai.TTS(url=server.url)
    model.on("metrics_collected", lambda m: metrics.append(m))
    model.prewarm()
    await server.wait_for(lambda: server.open_sockets == 1)
    for i in range(2):
        stream = model.stream(conn_options=FAST)
        stream.push_text(f"turn {i}")
        stream.end_input()
        await drain(stream)
        await stream.aclose()
    assert [m.connection_reused for m in metrics] == [True, True]
    # one socket waits for the next turn
    await server.wait_for(lambda: server.open_sockets == 1)
    assert server.connections == 3
    await model.aclose()
    await server.wait_for(lambda: server.open_sockets == 0)


async def test_voice_change_reconnects_with_the_new_voice(server: FakeKyutai) -> None:
    model = kyutai.TTS(url=server.url)
    model.prewarm()
    await server.wait_for(lambda: server.open_sockets == 1)
    model.update_options(voice="cml-tts/fr/2114_1656_000001-0001.wav")
    assert model.language == "fr"
    await server.wait_for(lambda: len(server.tts_queries) == 2 and server.open_sockets == 1)
    stream = model.stream(conn_options=FAST)
    stream.push_text("J'ai 21 ans.")
    stream.end_input()
    await drain(stream)
    await stream.aclose()
    assert server.tts_queries[-2]["voice"] == "cml-tts/fr/2114_1656_000001-0001.wav"
    assert server.tts_queries[-2]["format"] == "PcmMessagePack"
    assert [t for t in server.tts_texts if t][-1] == ["J'ai", "vingt", "et", "un", "ans."]
    await model.aclose()


async def test_interruption_closes_the_socket_at_once(server: FakeKyutai) -> None:
    server.tts_frames_per_word = 1
    model = kyutai.TTS(url=server.url, preconnect=False)
    stream = model.stream(conn_options=FAST)
    stream.push_text("one two three four ")
    got_audio = asyncio.Event()

    async def consume() -> None:
        async for _ in stream:
            got_audio.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_audio.wait(), 5)
    assert server.open_sockets == 1
    t0 = time.perf_counter()
    await stream.aclose()
    await asyncio.wait_for(server.closed.wait(), 1)
    assert time.perf_counter() - t0 < 0.1
    assert server.open_sockets == 0
    task.cancel()
    await model.aclose()


async def test_synthesize_uses_the_same_socket_path(server: FakeKyutai) -> None:
    model = kyutai.TTS(url=server.url, preconnect=False)
    frame = await model.synthesize("Hello there, 3 cats.", conn_options=FAST).collect()
    assert frame.sample_rate == 24000 and frame.num_channels == 1
    assert frame.samples_per_channel >= 4 * 2 * 1920  # 4 words, 2 frames each
    assert server.tts_texts == [["Hello", "there,", "three", "cats."]]
    await model.aclose()


async def test_auth_failure_is_not_retryable(server: FakeKyutai) -> None:
    model = kyutai.TTS(url=server.url, api_key="nope", preconnect=False)
    stream = model.stream(conn_options=APIConnectOptions(max_retry=2, retry_interval=0.01))
    stream.push_text("hi")
    stream.end_input()
    with pytest.raises(APIStatusError) as err:
        await drain(stream)
    assert err.value.status_code == 401 and not err.value.retryable
    await stream.aclose()
    await model.aclose()


async def test_full_tts_server_fails_over(server: FakeKyutai) -> None:
    full = await FakeKyutai(capacity=0).start()
    try:
        model = kyutai.TTS(url=[full.url, server.url], preconnect=False)
        frame = await model.synthesize("ok", conn_options=FAST).collect()
        assert frame.samples_per_channel > 0
        assert full.connections == 1 and server.tts_texts == [["ok"]]
        await model.aclose()
    finally:
        await full.stop()


async def test_cfg_alpha_only_sent_when_set(server: FakeKyutai) -> None:
    model = kyutai.TTS(url=server.url, preconnect=False, cfg_alpha=1.5)
    await model.synthesize("a", conn_options=FAST).collect()
    assert server.tts_queries[-1]["cfg_alpha"] == "1.5"
    model.update_options(cfg_alpha=None)
    await model.synthesize("b", conn_options=FAST).collect()
    assert "cfg_alpha" not in server.tts_queries[-1]
    await model.aclose()


@pytest.mark.parametrize("text", ["...", "😀", " – ", "**"])
async def test_a_reply_with_nothing_to_say_is_a_moment_of_silence(
    server: FakeKyutai, text: str
) -> None:
    """Nothing speakable: no Text and no Eos reach the server (Kyutai's closes without audio
    after an Eos alone, and the framework then retries and reports an error)."""
    errors: list[object] = []
    model = kyutai.TTS(url=server.url, preconnect=False)
    model.on("error", errors.append)
    stream = model.stream(conn_options=FAST)
    stream.push_text(text)
    stream.end_input()
    pcm, timed = await asyncio.wait_for(drain(stream), 5)
    await stream.aclose()
    assert pcm.size == 1920 and not pcm.any()
    assert timed == [] and errors == []
    assert server.tts_texts == [[]] and server.tts_eos == 0
    await server.wait_for(lambda: server.open_sockets == 0)  # the slot was freed at once
    frame = await model.synthesize(text, conn_options=FAST).collect()
    assert frame.samples_per_channel >= 1920  # the framework may pad the last frame
    assert not np.frombuffer(frame.data, dtype=np.int16).any()
    await model.aclose()


async def test_lone_dashes_do_not_shift_the_timings(server: FakeKyutai) -> None:
    model = kyutai.TTS(url=server.url, preconnect=False)
    stream = model.stream(conn_options=FAST)
    stream.push_text("One two – three — four well—maybe.")
    stream.end_input()
    _, timed = await drain(stream)
    await stream.aclose()
    assert server.tts_texts == [["One", "two", "three", "four", "well", "maybe."]]
    # one timed entry per word the LLM wrote, each timed by its own audio
    assert [str(t) for t in timed] == ["One ", "two ", "three ", "four ", "well—maybe. "]
    spans = [(t.start_time, t.end_time) for t in timed]  # type: ignore[attr-defined]
    assert spans[:4] == [pytest.approx((i * 0.16, (i + 1) * 0.16)) for i in range(4)]
    assert spans[4] == pytest.approx((4 * 0.16, 6 * 0.16))
    await model.aclose()


async def test_an_unknown_voice_is_a_clear_error_not_retried(server: FakeKyutai) -> None:
    server.tts_voices = {"expresso/ex03-ex01_happy_001_channel1_334s.wav"}
    model = kyutai.TTS(url=server.url, voice="expresso/typo.wav", preconnect=False)
    stream = model.stream(conn_options=APIConnectOptions(max_retry=3, retry_interval=0.01))
    stream.push_text("Hello.")
    stream.end_input()
    with pytest.raises(APIStatusError) as err:
        await drain(stream)
    assert err.value.status_code == 404 and not err.value.retryable
    assert "unknown voice" in err.value.message and "expresso/typo.wav" in err.value.message
    assert server.connections == 1  # asked once
    await stream.aclose()
    await model.aclose()
