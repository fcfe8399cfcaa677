"""`kyutai.Moshi` (a LiveKit DuplexModel) against real servers: our inference server (msgpack
wire) and Kyutai's own `moshi.server` (binary wire, found out from its handshake), both serving
the tiny keyed Moshi. Capacity failover, reconnection to the next URL when a server dies, and a
clean end when none is left."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from livekit.agents import llm, stt
from livekit.plugins import kyutai

from harness.inference_server import InferenceServer, start_inference_server, wait_slots_free
from harness.moshi_client import MsgpackChat, auth_headers, frames_of
from harness.moshi_py_server import start_moshi_py_server
from harness.speech import read_wav, speech_wav
from livekit.plugins.kyutai.moshi_gate import TEXT_KEY

pytestmark = pytest.mark.timeout(240)

SR = 24000
SILENT = np.zeros(1920, np.float32)
LOUD = 0.03


def _moshi_server(cache: Path) -> InferenceServer:
    return start_inference_server(
        cache, extra_args=["--engines", "moshi", "--moshi-batch-size", "1"]
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.tiny import ensure_tiny_checkpoints

    path = tmp_path_factory.mktemp("kyutai-tiny")
    ensure_tiny_checkpoints(path)
    return path


@pytest.fixture(scope="module")
def server(cache: Path) -> Iterator[InferenceServer]:
    with _moshi_server(cache) as srv:
        yield srv


@pytest.fixture(scope="module")
def voice() -> list[np.ndarray]:
    pcm, _ = read_wav(speech_wav("could you tell me the time please", lead_silence_s=0.0))
    return frames_of(pcm)


def voiced_span(voice: list[np.ndarray], offset: int) -> tuple[int, int]:
    """Input indices of the first and last voiced frames of `voice` placed at `offset`."""
    loud = [float(np.sqrt(np.mean(f**2))) > 0.02 for f in voice]
    return offset + loud.index(True), offset + len(voice) - 1 - loud[::-1].index(True)


def rtc_frame(pcm: np.ndarray, rate: int = SR) -> rtc.AudioFrame:
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    return rtc.AudioFrame(data, rate, 1, pcm.size)


def rms(frame: rtc.AudioFrame) -> float:
    x = np.frombuffer(frame.data, dtype=np.int16).astype(np.float32) / 32768
    return float(np.sqrt(np.mean(x**2)))


class Drive:
    """Feeds a session one input frame per output frame (a client at real time) and keeps
    everything it emits."""

    def __init__(self, session: kyutai.MoshiSession) -> None:
        self.session = session
        self.frames: list[llm.DuplexAudioFrame] = []
        self.deltas: list[llm.DuplexOutputTranscriptDelta] = []
        self.errors: list[llm.RealtimeModelError] = []
        self.reconnected = 0
        session.on("transcript_delta", self.deltas.append)
        session.on("error", self.errors.append)
        session.on("session_reconnected", lambda _ev: self._reconnected())

    def _reconnected(self) -> None:
        self.reconnected += 1

    async def run(self, script: list[np.ndarray], *, lead: int = 1, rate: int = SR) -> None:
        inputs = iter(script)

        def push() -> None:
            pcm = next(inputs, None)
            if pcm is None:
                return
            if rate != SR:  # the room's rate: the session resamples
                t = np.arange(round(pcm.size * rate / SR)) / rate
                pcm = np.interp(t, np.arange(pcm.size) / SR, pcm).astype(np.float32)
            self.session.push_audio(rtc_frame(pcm, rate))

        for _ in range(lead):
            push()
        target = len(self.frames) + len(script) - (lead - 1)
        async for f in self.session.audio_stream:
            self.frames.append(f)
            if len(self.frames) >= target:
                return
            push()

    def text(self, start_ms: int = 0, stop_ms: int = 1 << 30) -> str:
        return "".join(d.text for d in self.deltas if start_ms <= (d.start_ms or 0) < stop_ms)


async def test_greets_yields_and_answers_over_msgpack(
    server: InferenceServer, voice: list[np.ndarray]
) -> None:
    await wait_slots_free(server)  # each test has the one slot to itself
    model = kyutai.Moshi(urls=server.url, api_key=server.api_key)
    session = model.session()
    drive = Drive(session)
    try:
        await drive.run([SILENT] * 14 + voice + [SILENT] * 16)
    finally:
        await model.aclose()
    assert session.wire == "msgpack" and not drive.errors
    starts = [f.start_ms for f in drive.frames]
    assert starts == [80 * k for k in range(len(starts))]  # Moshi's own clock, silence included
    assert all(
        f.frame.sample_rate == SR and f.frame.samples_per_channel == 1920 for f in drive.frames
    )
    greeting = drive.text(0, 14 * 80)
    assert greeting.strip()
    # each text piece is on the step of its audio, and the frame is marked as speech
    flagged = {f.start_ms for f in drive.frames if (f.frame.userdata or {}).get(TEXT_KEY)}
    assert flagged == {d.start_ms for d in drive.deltas}
    assert all(rms(f.frame) > LOUD for f in drive.frames if f.start_ms in flagged)
    # silent while the user speaks, answers after
    onset, last = voiced_span(voice, 14)
    # (at most a one- or two-frame blip, when a late frame widened a gap between words)
    during = {
        d.start_ms for d in drive.deltas if 80 * (onset + 2) <= (d.start_ms or 0) <= 80 * last
    }
    assert len(during) <= 2, sorted(during)
    assert drive.text(80 * (last + 1)).strip()


async def test_the_gate_makes_one_burst_of_each_sentence(server: InferenceServer) -> None:
    await wait_slots_free(server)  # each test has the one slot to itself
    model = kyutai.Moshi(urls=server.url, api_key=server.api_key)
    session = model.session()
    drive = Drive(session)
    try:
        await drive.run([SILENT] * 30)
    finally:
        await model.aclose()
    gate = model.audio_gate()
    opened = [gate.update(f.frame) for f in drive.frames]
    # open from the first frame of the greeting, closed 0.5 s after its last word
    first = min(d.start_ms for d in drive.deltas) // 80
    last = max(d.start_ms for d in drive.deltas) // 80
    assert opened[first] and not any(opened[:first])
    assert all(opened[first : last + 1])
    assert not any(opened[last + 8 :])


async def test_room_audio_at_48khz_is_resampled(
    server: InferenceServer, voice: list[np.ndarray]
) -> None:
    await wait_slots_free(server)  # each test has the one slot to itself
    model = kyutai.Moshi(urls=server.url, api_key=server.api_key)
    session = model.session()
    drive = Drive(session)
    try:
        await drive.run([SILENT] * 14 + voice + [SILENT] * 16, rate=48000)
    finally:
        await model.aclose()
    _, last = voiced_span(voice, 14)
    assert drive.text(0, 14 * 80).strip() and drive.text(80 * (last + 1)).strip()


async def test_fails_over_when_full_and_reconnects_when_a_server_dies(
    cache: Path, server: InferenceServer
) -> None:
    await wait_slots_free(server)  # each test has the one slot to itself
    spare = _moshi_server(cache)
    try:
        # the first URL is full: its only slot is taken by another client
        chat = MsgpackChat(server.chat_url, server.api_key)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(chat.url, headers=auth_headers(server.api_key)) as holder,
        ):
            assert (await chat.recv(holder) or {}).get("type") == "Ready"
            model = kyutai.Moshi(urls=[server.url, spare.url], api_key=server.api_key)
            session = model.session()
            drive = Drive(session)
            await drive.run([SILENT] * 5)
        assert session.url is not None and str(spare.port) in session.url
        # the spare dies mid-call: no URL after it, so the session ends cleanly with an error
        spare.stop()
        async for _ in session.audio_stream:
            pass
        assert drive.errors and not drive.errors[0].recoverable
        await model.aclose()
    finally:
        spare.stop()

    # and with a URL after the one that dies, the session moves on and keeps its clock
    await wait_slots_free(server)
    spare = _moshi_server(cache)
    try:
        model = kyutai.Moshi(urls=[spare.url, server.url], api_key=server.api_key)
        session = model.session()
        drive = Drive(session)
        await drive.run([SILENT] * 5)
        assert str(spare.port) in (session.url or "")
        spare.stop()
        await drive.run([SILENT] * 20)
        assert drive.reconnected == 1 and str(server.port) in (session.url or "")
        starts = [f.start_ms for f in drive.frames]
        assert starts == [80 * k for k in range(len(starts))]
        assert drive.text(5 * 80).strip(), "the new Moshi greets again"
        await model.aclose()
    finally:
        spare.stop()


async def test_kyutai_moshi_server_over_its_binary_wire(
    cache: Path, tmp_path: Path, voice: list[np.ndarray]
) -> None:
    from inference.tiny import tiny_root

    with start_moshi_py_server(tiny_root(cache) / "moshi", tmp_path) as theirs:
        model = kyutai.Moshi(urls=f"ws://127.0.0.1:{theirs.port}")
        session = model.session()
        drive = Drive(session)
        try:
            # moshi.server answers a frame only once the next one is in: two ahead
            await drive.run([SILENT] * 14 + voice + [SILENT] * 16, lead=2)
        finally:
            await model.aclose()
    assert session.wire == "moshi" and not drive.errors
    assert drive.text(0, 14 * 80).strip()
    _, last = voiced_span(voice, 14)
    assert drive.text(80 * last).strip()  # one output less than ours: the first frame
    with pytest.raises(Exception, match="msgpack wire"):
        await session.hold()


async def test_a_moshi_that_never_yields_is_never_cut(cache: Path, voice: list[np.ndarray]) -> None:
    """The plugin passes on whatever Moshi says: with the never-yield checkpoint, Moshi's audio
    and text go on through the user's speech (nothing here pauses or drops it)."""
    args = ["--engines", "moshi", "--moshi-batch-size", "1", "--moshi-repo", "tiny/moshi-stubborn"]
    stubborn = start_inference_server(cache, extra_args=args)
    try:
        model = kyutai.Moshi(urls=stubborn.url, api_key=stubborn.api_key)
        session = model.session()
        drive = Drive(session)
        try:
            await drive.run([SILENT] * 14 + voice + [SILENT] * 16)
        finally:
            await model.aclose()
    finally:
        stubborn.stop()
    # quiet after its greeting, it starts again within 3 frames of the user's voice (the
    # keyed "stubborn" rule) and talks on until the user stops
    onset, last = voiced_span(voice, 14)
    during = [f for f in drive.frames if 80 * (onset + 3) <= (f.start_ms or 0) <= 80 * last]
    assert during and sum(rms(f.frame) > LOUD for f in during) >= len(during) * 0.8
    gate = model.audio_gate()
    opened = [gate.update(f.frame) for f in drive.frames]
    assert all(opened[onset + 3 : last + 1]), opened


async def test_the_user_is_transcribed_by_the_kyutai_stt_beside_moshi(
    cache: Path, voice: list[np.ndarray]
) -> None:
    """Moshi gives no user words: with `user_stt` the same audio goes to the Kyutai STT (its
    own slot on the same server), and the user's words come out as input transcriptions, one
    item per turn, interim then final."""
    both = start_inference_server(
        cache, extra_args=["--engines", "stt,moshi", "--moshi-batch-size", "1"]
    )
    try:
        user_stt = kyutai.STT(url=both.url, api_key=both.api_key)
        model = kyutai.Moshi(urls=both.url, api_key=both.api_key, user_stt=user_stt)
        assert model.capabilities.user_transcription
        session = model.session()
        heard: list[llm.InputTranscriptionCompleted] = []
        final = asyncio.Event()

        def on_heard(ev: llm.InputTranscriptionCompleted) -> None:
            heard.append(ev)
            if ev.is_final:
                final.set()

        session.on("input_audio_transcription_completed", on_heard)
        drive = Drive(session)
        try:
            # the pause heads end the turn in the trailing silence
            await drive.run([SILENT] * 14 + voice + [SILENT] * 30)
            await asyncio.wait_for(final.wait(), 20)
        finally:
            await model.aclose()
            await user_stt.aclose()
    finally:
        both.stop()
    assert not drive.errors
    finals = [h for h in heard if h.is_final]
    assert len(finals) == 1 and finals[0].transcript.strip()
    assert {h.item_id for h in heard} == {finals[0].item_id}  # one turn, one item
    assert finals[0].turn_started_at is not None
    assert drive.text().strip()  # and Moshi talked meanwhile


def test_user_stt_must_stream() -> None:
    class Batch(kyutai.STT):
        @property
        def capabilities(self) -> stt.STTCapabilities:  # type: ignore[override]
            return stt.STTCapabilities(streaming=False, interim_results=False)

    with pytest.raises(ValueError, match="streaming"):
        kyutai.Moshi(urls="ws://127.0.0.1:1", user_stt=Batch(url="ws://127.0.0.1:1"))
