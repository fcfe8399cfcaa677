"""A real WebRTC participant (tests, benches): speaks WAV files or samples in real time,
records what the agent says and when it is audible."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from .speech import read_wav, speech_wav

SAMPLE_RATE = 24000
FRAME_SAMPLES = 480  # 20 ms, what WebRTC sends per packet
# The microphone's queue. A real microphone is fed by an audio thread; ours by this event
# loop, so the queue must ride out the loop's stalls (GC, a loaded CI machine): once it runs
# dry, WebRTC sends nothing and the agent hears a gap, which its pause heads take for the end
# of the turn. Timestamps account for it (see `_microphone_loop`).
MIC_QUEUE_MS = 300
MIN_RMS = 0.01  # a received frame at least this loud is audible
LONG_ANSWER_QUESTION = "Tell me about the planets please."


@dataclass
class ReceivedAudio:
    identity: str
    received_at: float  # time.monotonic() when the frame arrived
    samples: np.ndarray  # float32 mono at SAMPLE_RATE (empty unless record_samples)
    rms: float


@dataclass
class Transcript:
    identity: str  # who published the stream
    text: str
    attributes: dict[str, str]
    received_at: float


@dataclass
class AttributeChange:
    identity: str
    changed: dict[str, str]
    received_at: float


@dataclass
class TestParticipant:
    """Joins a room as a user. Every callback records into lists and wakes `wait_for`.

    `record_samples=False` keeps only the arrival time and loudness of each received frame
    (a load test's users need no more)."""

    __test__ = False  # not a pytest class

    identity: str
    record_samples: bool = True
    room: rtc.Room = field(default_factory=rtc.Room)
    audio: list[ReceivedAudio] = field(default_factory=list)
    transcripts: list[Transcript] = field(default_factory=list)
    attribute_changes: list[AttributeChange] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _source: rtc.AudioSource | None = None
    # (frame, [(future, sample index in the frame)]): each future gets the moment its sample
    # leaves the microphone
    _pending: list[tuple[np.ndarray, list[tuple[asyncio.Future[float], int]]]] = field(
        default_factory=list
    )
    _mic_task: asyncio.Future[None] | None = None
    mic_gaps: list[float] = field(default_factory=list)
    """Seconds the microphone ran dry (the loop stalled past its queue): gaps the agent heard."""
    agent_left: bool = False  # an agent was in the room and left it
    streams: dict[str, list[Transcript]] = field(default_factory=dict)
    """Text streams of the topics passed to `listen` (e.g. "kyutai.tool"), as received."""

    async def join(self, url: str, token: str) -> None:
        self.room.on("track_subscribed", self._on_track_subscribed)
        self.room.on("participant_attributes_changed", self._on_attributes)
        self.room.on("participant_connected", lambda _p: self._notify())
        self.room.on("participant_disconnected", self._on_participant_left)
        self.room.on("disconnected", lambda *_: self._notify())
        self.room.register_text_stream_handler("lk.transcription", self._on_text_stream)
        await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))

    def listen(self, topic: str) -> list[Transcript]:
        """Keep every text stream on `topic` (in `streams[topic]`); call before it is sent."""
        received = self.streams.setdefault(topic, [])

        def on_stream(reader: rtc.TextStreamReader, identity: str) -> None:
            async def read() -> None:
                try:
                    text = await reader.read_all()
                except rtc.StreamError:
                    return
                attrs = dict(reader.info.attributes or {})
                received.append(Transcript(identity, text, attrs, time.monotonic()))
                self._notify()

            self._spawn(read())

        self.room.register_text_stream_handler(topic, on_stream)
        return received

    def user_captions(self) -> list[str]:
        """Captions of this participant's own speech (the agent transcribes our microphone)."""
        mine = {pub.sid for pub in self.room.local_participant.track_publications.values()}
        return [
            t.text for t in self.transcripts if t.attributes.get("lk.transcribed_track_id") in mine
        ]

    async def leave(self) -> None:
        await self.room.disconnect()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- waiting -----------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Wait until `predicate()` holds, re-checking whenever something is received."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.identity}: no {what} within {timeout}s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass

    def agents(self) -> list[rtc.RemoteParticipant]:
        return [
            p
            for p in self.room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ]

    async def wait_for_agent(self, timeout: float = 10.0) -> rtc.RemoteParticipant:
        await self.wait_for(lambda: bool(self.agents()), timeout=timeout, what="an agent to join")
        return self.agents()[0]

    async def wait_for_greeting(self, agent_timeout: float = 10.0) -> None:
        """An agent joins, greets (its audio arrives) and is listening again."""
        await self.wait_for_agent(timeout=agent_timeout)
        await self.wait_for(
            lambda: self.agent_audio_after(0.0) is not None,
            timeout=30,
            what="the greeting's audio",
        )
        await self.wait_for(
            lambda: self.agent_state() == "listening",
            timeout=30,
            what="the agent to finish its greeting",
        )

    def agent_state(self) -> str | None:
        agents = self.agents()
        return agents[0].attributes.get("lk.agent.state") if agents else None

    def agent_audio(self) -> np.ndarray:
        frames = [a.samples for a in self.audio]
        return np.concatenate(frames) if frames else np.zeros(0, dtype=np.float32)

    def _audio_from(self, t: float) -> int:
        """Index of the first received frame that arrived at or after `t`."""
        return bisect.bisect_left(self.audio, t, key=lambda a: a.received_at)

    def agent_audio_after(self, t: float, *, min_rms: float = MIN_RMS) -> float | None:
        """Monotonic arrival time of the first audible agent frame after `t`, if any."""
        for chunk in self.audio[self._audio_from(t) :]:
            if chunk.rms >= min_rms:
                return chunk.received_at
        return None

    def agent_quiet_since(self, t: float, *, min_rms: float = MIN_RMS) -> bool:
        """No audible agent frame arrived at or after `t`."""
        return self.agent_audio_after(t, min_rms=min_rms) is None

    def agent_audio_stopped_after(
        self, t: float, *, gap: float = 0.3, min_rms: float = MIN_RMS
    ) -> float | None:
        """Arrival time of the last audible agent frame after `t` that is followed by at least
        `gap` seconds of inaudible frames: when the listener stopped hearing the agent."""
        last_loud: float | None = None
        for chunk in self.audio[self._audio_from(t) :]:
            loud = chunk.rms >= min_rms
            if loud:
                if last_loud is not None and chunk.received_at - last_loud >= gap:
                    return last_loud
                last_loud = chunk.received_at
            elif last_loud is not None and chunk.received_at - last_loud >= gap:
                return last_loud
        return None

    async def agent_stop_after(self, onset: float, *, timeout: float = 5.0) -> float | None:
        """Seconds from `onset` to the arrival of the agent's last audible frame (then 0.3 s
        of quiet): when a listener who spoke at `onset` stopped hearing the agent. Negative if
        it fell silent before; None if it did not within `timeout`."""
        try:
            await self.wait_for(
                lambda: self.agent_audio_stopped_after(onset - 0.5) is not None,
                timeout=timeout,
                what="the agent to stop",
            )
        except TimeoutError:
            return None
        stopped = self.agent_audio_stopped_after(onset - 0.5)
        return None if stopped is None else stopped - onset

    async def start_long_answer(
        self,
        question: str = LONG_ANSWER_QUESTION,
        *,
        into_s: float = 2.0,
        agent_timeout: float = 10.0,
        answer_timeout: float = 10.0,
    ) -> float:
        """Wait for the greeting, ask `question` aloud, and listen `into_s` seconds into the
        answer: the prelude of every interruption test (script a long answer in the LLM
        first). Returns when that answer was first heard (monotonic)."""
        await self.wait_for_greeting(agent_timeout=agent_timeout)
        _onset, end = await self.say(speech_wav(question))
        await self.wait_for(
            lambda: self.agent_audio_after(end) is not None,
            timeout=answer_timeout,
            what="the long answer to start",
        )
        started = self.agent_audio_after(end) or 0.0
        await self.wait_for(
            lambda: time.monotonic() - started > into_s,
            timeout=into_s + 3,
            what=f"{into_s} s of the long answer",
        )
        return started

    # --- speaking ----------------------------------------------------------------------
    async def publish_microphone(self) -> rtc.AudioSource:
        """Publish a microphone track that, like a real one, never stops: silence between
        utterances keeps the agent's audio clock (and its VAD) running."""
        if self._source is None:
            self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=MIC_QUEUE_MS)
            track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
            opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await self.room.local_participant.publish_track(track, opts)
            self._mic_task = asyncio.ensure_future(self._microphone_loop())
            self._tasks.add(self._mic_task)
        return self._source

    async def _microphone_loop(self) -> None:
        assert self._source is not None
        silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        drains_at: float | None = None  # when the queue runs dry if nothing more comes
        while True:
            if self._pending:
                chunk, markers = self._pending.pop(0)
            else:
                chunk, markers = silence, []
            now = time.monotonic()
            if drains_at is not None and now > drains_at + 0.01:
                self.mic_gaps.append(now - drains_at)
            # capture_frame paces us in real time: it waits while the queue is full.
            await self._source.capture_frame(
                rtc.AudioFrame(chunk.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
            )
            # this frame ends where the queue does: it leaves the microphone then
            drains_at = time.monotonic() + self._source.queued_duration
            for future, sample in markers:
                if not future.done():
                    future.set_result(drains_at - (FRAME_SAMPLES - sample) / SAMPLE_RATE)

    async def say(self, wav: Path) -> tuple[float, float]:
        """Speak a WAV in real time; returns the monotonic moments its first and last audible
        samples left the microphone (were sent, as a real microphone's would be)."""
        samples, rate = read_wav(wav)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{wav}: expected {SAMPLE_RATE} Hz, got {rate}")
        return await self.say_samples(samples)

    async def say_samples(self, samples: np.ndarray) -> tuple[float, float]:
        await self.publish_microphone()
        loop = asyncio.get_running_loop()
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        loud = np.flatnonzero(np.abs(pcm) > 300)
        first_loud = int(loud[0]) if loud.size else 0
        last_loud = int(loud[-1]) if loud.size else 0
        onset: asyncio.Future[float] = loop.create_future()
        end: asyncio.Future[float] = loop.create_future()
        for start in range(0, len(pcm), FRAME_SAMPLES):
            chunk = pcm[start : start + FRAME_SAMPLES]
            if len(chunk) < FRAME_SAMPLES:
                chunk = np.pad(chunk, (0, FRAME_SAMPLES - len(chunk)))
            markers = []
            if start <= first_loud < start + FRAME_SAMPLES:
                markers.append((onset, first_loud - start))
            if start <= last_loud < start + FRAME_SAMPLES:
                markers.append((end, last_loud - start + 1))
            self._pending.append((chunk, markers))
        return await onset, await end

    # --- receiving ---------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        _pub: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._spawn(self._record(track, participant.identity))
        self._notify()

    async def _record(self, track: rtc.Track, identity: str) -> None:
        try:
            stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        except Exception:  # the track went away before we could open it (agent left)
            return
        try:
            async for event in stream:
                data = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32) / 32768
                rms = float(np.sqrt(np.mean(data**2))) if data.size else 0.0
                kept = data if self.record_samples else data[:0]
                self.audio.append(ReceivedAudio(identity, time.monotonic(), kept, rms))
                self._notify()
        except Exception:  # the stream's handle is gone once the track is unpublished
            return
        finally:
            await stream.aclose()

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            try:
                text = await reader.read_all()
            except rtc.StreamError:  # cut off by a disconnect: the transcript never finished
                return
            attrs = dict(reader.info.attributes or {})
            self.transcripts.append(Transcript(identity, text, attrs, time.monotonic()))
            self._notify()

        self._spawn(read())

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self.agent_left = True
        self._notify()

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        self.attribute_changes.append(
            AttributeChange(participant.identity, dict(changed), time.monotonic())
        )
        self._notify()
