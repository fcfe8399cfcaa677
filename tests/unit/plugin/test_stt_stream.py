"""kyutai.STT stream mechanics against a scripted fake server: event order, flushes, auth,
capacity failover, reconnection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectionError, APIConnectOptions, APIStatusError, stt
from livekit.plugins import kyutai

from livekit.plugins.kyutai.stt import LEAD_SILENCE_FRAMES

from .fake_server import FakeKyutai

SR = 24000
LEAD = LEAD_SILENCE_FRAMES
FAST = APIConnectOptions(max_retry=0, timeout=2.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeKyutai]:
    fake = await FakeKyutai().start()
    yield fake
    await fake.stop()


def audio(seconds: float, *, seed: int = 0, sr: int = SR) -> list[rtc.AudioFrame]:
    """Low noise in 20 ms frames."""
    rng = np.random.default_rng(seed)
    pcm = (rng.standard_normal(int(seconds * sr)) * 1000).astype(np.int16)
    step = sr // 50
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), sr, 1, step)
        for i in range(0, pcm.size - step + 1, step)
    ]


def word(text: str, frame: int) -> list[dict[str, object]]:
    """A word closed by the 0 token of step ``frame`` (Kyutai: Word and EndWord together, the
    stop at that step's time, 6 steps of model delay)."""
    stop = max(0.0, (frame + 1 - 6) * 0.08)
    return [
        {"type": "Word", "text": text, "start_time": max(0.0, stop - 0.24)},
        {"type": "EndWord", "stop_time": stop},
    ]


async def collect(stream: stt.RecognizeStream, until: stt.SpeechEventType) -> list[stt.SpeechEvent]:
    events: list[stt.SpeechEvent] = []

    async def run() -> None:
        async for ev in stream:
            events.append(ev)
            if ev.type == until:
                return

    await asyncio.wait_for(run(), 10)
    return events


def types(events: list[stt.SpeechEvent]) -> list[str]:
    return [e.type.name for e in events if e.type != stt.SpeechEventType.RECOGNITION_USAGE]


async def test_turn_event_sequence_with_trailing_words(server: FakeKyutai) -> None:
    # Frame numbers count the plugin's lead silence: room audio starts at frame LEAD.
    server.stt_script = {
        LEAD + 15: word("hello", LEAD + 15),
        LEAD + 18: word("there", LEAD + 18),
        LEAD + 27: word("friend", LEAD + 27),
    }
    server.pause_prob = lambda i: 0.9 if LEAD + 25 <= i < LEAD + 40 else 0.05
    model = kyutai.STT(url=server.url)
    stream = model.stream(conn_options=FAST)
    for f in audio(4.0):
        stream.push_frame(f)
    events = await collect(stream, stt.SpeechEventType.END_OF_SPEECH)
    # The end of speech follows the final transcript: LiveKit commits the turn on it.
    assert types(events) == [
        "START_OF_SPEECH",
        "INTERIM_TRANSCRIPT",
        "INTERIM_TRANSCRIPT",
        "INTERIM_TRANSCRIPT",
        "FINAL_TRANSCRIPT",
        "END_OF_SPEECH",
    ]
    final = events[-2].alternatives[0]
    assert final.text == "hello there friend"
    assert final.words is not None and [str(w) for w in final.words] == ["hello", "there", "friend"]
    # on the room's timeline: the lead silence is not the room's
    assert final.start_time == pytest.approx((15 + 1 - 6) * 0.08 - 0.24, abs=0.01)
    assert final.end_time > final.start_time
    end = next(e for e in events if e.type == stt.SpeechEventType.END_OF_SPEECH)
    start = next(e for e in events if e.type == stt.SpeechEventType.START_OF_SPEECH)
    assert end.speech_end_time is not None and start.speech_start_time is not None
    assert start.speech_start_time < end.speech_end_time <= end.created_at
    # The server sends Steps: the flush counts them and sends no Marker (Kyutai's Python STT
    # module ends the session after echoing one).
    assert server.markers == []
    await stream.aclose()
    await model.aclose()


async def test_usage_and_end_of_input(server: FakeKyutai) -> None:
    server.stt_script = {14: word("bye", 14)}
    metrics: list[object] = []
    model = kyutai.STT(url=server.url)
    model.on("metrics_collected", metrics.append)
    stream = model.stream(conn_options=FAST)
    for f in audio(2.0):
        stream.push_frame(f)
    stream.end_input()
    events = [ev async for ev in stream]
    assert types(events) == [
        "START_OF_SPEECH",
        "INTERIM_TRANSCRIPT",
        "FINAL_TRANSCRIPT",
        "END_OF_SPEECH",
    ]
    usage = sum(
        e.recognition_usage.audio_duration
        for e in events
        if e.type == stt.SpeechEventType.RECOGNITION_USAGE and e.recognition_usage
    )
    assert usage == pytest.approx(2.0, abs=0.01)  # room audio only, not the flush silence
    assert any(getattr(m, "audio_duration", 0) > 0 for m in metrics)
    await model.aclose()


async def test_framework_flush_sentinel_finalises_the_turn(server: FakeKyutai) -> None:
    server.stt_script = {14: word("stop", 14)}
    model = kyutai.STT(url=server.url)
    stream = model.stream(conn_options=FAST)
    for f in audio(1.5):
        stream.push_frame(f)
    stream.flush()
    for f in audio(1.0, seed=1):
        stream.push_frame(f)
    events = await collect(stream, stt.SpeechEventType.END_OF_SPEECH)
    assert types(events)[-2:] == ["FINAL_TRANSCRIPT", "END_OF_SPEECH"]
    assert events[-2].alternatives[0].text == "stop"
    await stream.aclose()
    await model.aclose()


def voice_then_silence(voiced_s: float, silent_s: float) -> list[rtc.AudioFrame]:
    """Noise well above the voice gate, then digital silence (a quiet microphone)."""
    step = SR // 50
    pcm = np.zeros(int((voiced_s + silent_s) * SR), dtype=np.int16)
    rng = np.random.default_rng(3)
    pcm[: int(voiced_s * SR)] = (rng.standard_normal(int(voiced_s * SR)) * 3000).astype(np.int16)
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), SR, 1, step)
        for i in range(0, pcm.size - step + 1, step)
    ]


async def flushed_turn(
    server: FakeKyutai,
    *,
    to_voice: bool,
    words: dict[int, list[dict[str, object]]],
    pause_at: int = 22,
    hold: bool = True,
) -> tuple[str, int]:
    """1.2 s of voice (room frames 0-14) then 2 s of silence, the pause detected at room frame
    `pause_at`; with `hold`, the server stops at room frame 30 until the turn's END_OF_SPEECH
    came. Returns the final transcript and the frames the server had stepped through then."""
    server.stt_script = words
    server.pause_prob = lambda i: 0.9 if i >= LEAD + pause_at else 0.05
    server.hold_at_frame = LEAD + 30
    if not hold:
        server.resume.set()
    model = kyutai.STT(url=server.url, flush_to_voice=to_voice)
    stream = model.stream(conn_options=FAST)
    frames = voice_then_silence(1.2, 2.0)
    # what is queued before the connection opens is a backlog, whose silence is skipped
    stream.push_frame(frames[0])
    await server.wait_for(lambda: server.stt_frames >= LEAD)
    for f in frames[1:]:
        stream.push_frame(f)
    events = await collect(stream, stt.SpeechEventType.END_OF_SPEECH)
    stepped = server.stt_frames
    server.resume.set()
    await stream.aclose()
    await model.aclose()
    return events[-2].alternatives[0].text, stepped


async def test_a_flush_to_voice_ends_the_turn_without_stepping_through_the_pause(
    server: FakeKyutai,
) -> None:
    # The voice ends at room frame 15: its words are out by step 15 + 6 + 3 = 24, so the turn
    # ends while the server is held at 30, with the word spoken at frame 10.
    text, stepped = await flushed_turn(
        server, to_voice=True, words={LEAD + 16: word("hello", LEAD + 16)}
    )
    assert text == "hello"
    assert stepped <= LEAD + 30


async def test_the_full_flush_steps_through_the_whole_pause(server: FakeKyutai) -> None:
    # Unmute's rule on the same turn: the pause came with frame 22, so at least 23 frames were
    # sent; the flush steps past them and the delay (8 frames), beyond the hold at 30.
    text, stepped = await flushed_turn(
        server, to_voice=False, words={LEAD + 16: word("hello", LEAD + 16)}, hold=False
    )
    assert text == "hello"
    assert stepped >= LEAD + 23 + 8


async def test_a_word_the_voice_gate_did_not_hear_gets_the_full_flush(
    server: FakeKyutai,
) -> None:
    # A quiet word (under the gate) that starts after the last voiced frame: the voice gate is
    # wrong for this microphone, and the flush steps through the whole pause.
    text, stepped = await flushed_turn(
        server,
        to_voice=True,
        words={LEAD + 16: word("hello", LEAD + 16), LEAD + 24: word("again", LEAD + 24)},
        pause_at=26,
        hold=False,
    )
    assert text == "hello again"
    assert stepped >= LEAD + 27 + 8


async def test_resamples_48k_input(server: FakeKyutai) -> None:
    server.stt_script = {14: word("hi", 14)}
    model = kyutai.STT(url=server.url)
    stream = model.stream(conn_options=FAST)
    for f in audio(1.5, sr=48000):
        stream.push_frame(f)
    stream.end_input()
    events = [ev async for ev in stream]
    assert "FINAL_TRANSCRIPT" in types(events)
    assert server.stt_frames >= int(1.4 / 0.08)
    await model.aclose()


async def test_bad_key_is_a_clear_non_retryable_error(server: FakeKyutai) -> None:
    model = kyutai.STT(url=server.url, api_key="wrong")
    stream = model.stream(conn_options=APIConnectOptions(max_retry=3, retry_interval=0.01))
    stream.push_frame(audio(0.1)[0])
    with pytest.raises(APIStatusError) as err:
        await collect(stream, stt.SpeechEventType.FINAL_TRANSCRIPT)
    assert err.value.status_code == 401
    assert not err.value.retryable
    assert "API key" in err.value.message and "KYUTAI_API_KEY" in err.value.message
    assert server.connections == 0
    await model.aclose()


async def test_unreachable_server_is_a_connection_error() -> None:
    model = kyutai.STT(url="ws://127.0.0.1:9")
    stream = model.stream(conn_options=FAST)
    with pytest.raises(APIConnectionError, match="unreachable"):
        await collect(stream, stt.SpeechEventType.FINAL_TRANSCRIPT)
    await model.aclose()


async def test_full_server_fails_over_to_the_next(server: FakeKyutai) -> None:
    full = await FakeKyutai(capacity=0).start()
    try:
        server.stt_script = {14: word("over", 14)}
        model = kyutai.STT(url=[full.url, server.url])
        stream = model.stream(conn_options=FAST)
        for f in audio(1.5):
            stream.push_frame(f)
        stream.end_input()
        events = [ev async for ev in stream]
        finals = [
            e.alternatives[0].text for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT
        ]
        assert finals == ["over"]
        assert full.connections == 1 and server.connections == 1
        await model.aclose()
    finally:
        await full.stop()


async def test_all_servers_full_is_retryable_503() -> None:
    full = await FakeKyutai(capacity=0).start()
    try:
        model = kyutai.STT(url=full.url)
        stream = model.stream(conn_options=FAST)
        with pytest.raises(APIStatusError) as err:
            await collect(stream, stt.SpeechEventType.FINAL_TRANSCRIPT)
        assert err.value.status_code == 503 and err.value.retryable
        assert "no free channels" in err.value.message
        await model.aclose()
    finally:
        await full.stop()


async def test_reconnects_after_the_server_drops(server: FakeKyutai) -> None:
    # the first connection drops mid-turn; the framework retries and the stream carries on
    server.stt_script = {14: word("before", 14), 40: word("after", 40)}
    server.drop_after_frames = 20
    model = kyutai.STT(url=server.url)
    errors: list[object] = []
    model.on("error", errors.append)
    stream = model.stream(conn_options=APIConnectOptions(max_retry=2, retry_interval=0.05))
    for f in audio(2.0):
        stream.push_frame(f)
    first = await collect(stream, stt.SpeechEventType.END_OF_SPEECH)
    # the interrupted turn is closed with what was heard
    assert types(first) == [
        "START_OF_SPEECH",
        "INTERIM_TRANSCRIPT",
        "FINAL_TRANSCRIPT",
        "END_OF_SPEECH",
    ]
    assert first[-2].alternatives[0].text == "before"
    server.drop_after_frames = None
    for f in audio(3.0, seed=2):
        stream.push_frame(f)
    stream.end_input()
    rest = [ev async for ev in stream]
    assert "after" in [e.alternatives[0].text for e in rest if e.alternatives]
    assert server.connections == 2
    assert len(errors) == 1 and getattr(errors[0], "recoverable", False)
    await model.aclose()


async def two_flushed_turns(server: FakeKyutai) -> list[str]:
    """A turn ended by the framework's flush, then one ended by the end of input: the finals."""
    server.stt_script = {LEAD + 5: word("one", LEAD + 5), LEAD + 45: word("two", LEAD + 45)}
    model = kyutai.STT(url=server.url)
    stream = model.stream(conn_options=FAST)
    for f in audio(1.0):
        stream.push_frame(f)
    stream.flush()
    first = await collect(stream, stt.SpeechEventType.FINAL_TRANSCRIPT)
    for f in audio(1.5, seed=1):
        stream.push_frame(f)
    stream.end_input()
    events = first + [ev async for ev in stream]
    await model.aclose()
    return [e.alternatives[0].text for e in events if e.type.name == "FINAL_TRANSCRIPT"]


async def test_turns_on_a_server_that_ends_the_session_after_a_marker(
    server: FakeKyutai,
) -> None:
    """Kyutai's Python STT module (PyBatchedAsr) closes after echoing a Marker: flushing by
    Step count keeps one connection for many turns."""
    server.close_after_marker = True
    server.step_idx_base = 822  # and numbers its steps across the batch
    assert await two_flushed_turns(server) == ["one", "two"]
    assert server.connections == 1 and server.markers == []


async def test_a_server_without_steps_is_flushed_with_markers(server: FakeKyutai) -> None:
    server.send_steps = False  # like stt-2.6b-en: no pause heads, no Steps
    assert await two_flushed_turns(server) == ["one", "two"]
    assert server.markers == [1, 2]


def test_url_route_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from livekit.plugins.kyutai import connection

    monkeypatch.setenv("KYUTAI_STT_URL", "ws://a:1, ws://b:2/custom")
    monkeypatch.setenv("KYUTAI_API_KEY", "k1")
    model = kyutai.STT()
    assert model.urls == ["ws://a:1", "ws://b:2/custom"]
    assert connection.endpoint("ws://a:1", "/api/asr-streaming") == "ws://a:1/api/asr-streaming"
    assert connection.endpoint("http://b:2/custom", "/x") == "ws://b:2/custom"
    assert connection.resolve_api_key(None) == "k1"
    monkeypatch.delenv("KYUTAI_API_KEY")
    assert connection.resolve_api_key(None) == "public_token"
    with pytest.raises(ValueError):
        kyutai.STT(url="ftp://nope")


async def test_a_flush_waits_for_a_server_that_is_behind_but_stepping(
    server: FakeKyutai,
) -> None:
    """A server still working through queued audio (after an outage, on a loaded CPU) is slow,
    not gone: the flush timeout must not finalise the turn without the words ahead of it."""
    server.step_s = 0.03  # 0.03 s per 80 ms frame, and all the audio arrives at once
    server.stt_script = {LEAD + 20: word("late", LEAD + 20)}
    model = kyutai.STT(url=server.url, flush_timeout=0.3)
    stream = model.stream(conn_options=FAST)
    for f in audio(2.0):
        stream.push_frame(f)
    stream.flush()  # the server is ~1 s of compute behind: 3 flush timeouts
    events = await collect(stream, stt.SpeechEventType.END_OF_SPEECH)
    assert types(events)[-2:] == ["FINAL_TRANSCRIPT", "END_OF_SPEECH"]
    assert events[-2].alternatives[0].text == "late"
    await stream.aclose()
    await model.aclose()


def quiet(seconds: float) -> list[rtc.AudioFrame]:
    step = SR // 50
    return [
        rtc.AudioFrame(np.zeros(step, dtype=np.int16).tobytes(), SR, 1, step)
        for _ in range(round(seconds * 50))
    ]


async def test_a_queued_backlog_is_resent_without_its_quiet_stretches(
    server: FakeKyutai,
) -> None:
    """Audio queued before the connection opens (an outage's, after a reconnect): quiet far
    from speech is skipped, speech is kept, and word times stay on the room's timeline."""
    server.stt_script = {LEAD + 10: word("hi", LEAD + 10)}
    model = kyutai.STT(url=server.url)
    stream = model.stream(conn_options=FAST)
    # 3.7 s skipped (far from speech), 0.3 s kept before the speech, 0.4 s of speech, then
    # 1.0 s of quiet of which the 0.3 s after the speech and the 0.5 s tail are kept
    for f in quiet(4.0) + audio(0.4) + quiet(1.0):
        stream.push_frame(f)
    stream.flush()
    events = await collect(stream, stt.SpeechEventType.END_OF_SPEECH)
    final = events[-2].alternatives[0]
    assert final.text == "hi"
    # server time 1.12 s = lead 0.96 s + 0.16 s of resent audio = room 3.7 + 0.16 s
    assert final.start_time == pytest.approx(3.86, abs=0.02)
    # 1.5 s of the 5.4 s resent: 18 whole frames (+ the flush's), not 67
    assert server.stt_frames < LEAD + 67
    assert server.stt_frames >= LEAD + 18
    await stream.aclose()
    await model.aclose()
