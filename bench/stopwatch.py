"""A stranger's stopwatch, and the floor of one WebRTC leg.

`Stopwatch` is a hidden participant written from the rtc SDK alone (none of the harness's
bookkeeping): it subscribes to every audio track of a room and notes when each loud frame
arrives. For a turn it measures the user's last loud frame → the agent's first loud frame, as
both reach a third party through the same server: an end to end that owes nothing to the load
generator's own accounting of when its samples left.

`python -m bench.stopwatch` measures the floor a leg cannot beat on this server: a sender
clicks, an echo participant puts every frame it receives straight back into its own track,
and the sender hears the echo. One leg is timed directly (sender → echo, both processes on one
monotonic clock) and as half the round trip; the load test's uplink and downlink are compared
with it (docs/latency.md).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from livekit import rtc

from agent.ops.waterfall import is_voiced
from harness.join_token import make_token
from harness.livekit_server import ROOT, start_livekit_server

from .stats import Summary, format_table, summarize

SAMPLE_RATE = 48000
FRAME_MS = 10
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
AGENT_PREFIX = "agent-"  # LiveKit names an agent participant agent-<job id>


@dataclass
class Heard:
    """The arrival times of one participant's loud frames, in order."""

    loud: list[float] = field(default_factory=list)

    def last_before(self, t: float) -> float | None:
        i = bisect.bisect_left(self.loud, t)
        return self.loud[i - 1] if i else None

    def first_after(self, t: float) -> float | None:
        i = bisect.bisect_right(self.loud, t)
        return self.loud[i] if i < len(self.loud) else None


def turn_seen(user: Heard, agent: Heard, around: float, window_s: float = 1.0) -> float | None:
    """The stopwatch's end to end of one turn: the user's last loud frame received within
    `window_s` of `around` (any estimate of the turn's end) → the agent's first loud frame
    after it. None when either is missing."""
    last = user.last_before(around + window_s)
    if last is None or last < around - window_s:
        return None
    first = agent.first_after(last)
    return None if first is None else first - last


class Stopwatch:
    """A hidden participant that hears every audio track of a room."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.heard: dict[str, Heard] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.room.on("track_subscribed", self._on_track)

    async def join(self, url: str, api_key: str, api_secret: str, room: str) -> None:
        token = make_token(api_key, api_secret, room=room, identity="stopwatch", hidden=True)
        await self.room.connect(url, token)

    def _on_track(
        self, track: rtc.Track, _pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            heard = self.heard.setdefault(who.identity, Heard())
            task = asyncio.ensure_future(self._listen(track, heard))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _listen(self, track: rtc.Track, heard: Heard) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        try:
            async for ev in stream:
                if is_voiced(ev.frame):  # one rule for "voiced" on every side
                    heard.loud.append(time.monotonic())
        finally:
            await stream.aclose()

    def of(self, identity_prefix: str) -> Heard:
        """The first participant whose identity starts with `identity_prefix` (empty if none)."""
        return next((h for i, h in self.heard.items() if i.startswith(identity_prefix)), Heard())

    async def leave(self) -> None:
        await self.room.disconnect()
        for task in list(self._tasks):
            task.cancel()


# --- the floor of one leg: an echo participant ------------------------------------------------
CLICK_S = 0.05
CLICK_EVERY_S = 0.6


def click() -> np.ndarray:
    """50 ms of a 1 kHz tone at about -10 dBFS: loud from its first sample."""
    t = np.arange(int(SAMPLE_RATE * CLICK_S)) / SAMPLE_RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * 1000 * t + np.pi / 2)).astype(np.int16)


async def _echo(room: rtc.Room, source: rtc.AudioSource, arrivals: list[float]) -> None:
    """Every frame of the first remote audio track, straight into `source`; the arrival time
    of each click's first loud frame into `arrivals`."""
    track: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()

    def on_track(t: rtc.Track, *_: object) -> None:
        if t.kind == rtc.TrackKind.KIND_AUDIO and not track.done():
            track.set_result(t)

    room.on("track_subscribed", on_track)
    await _hear_onsets(await track, arrivals, forward_to=source)


async def _send_clicks(source: rtc.AudioSource, count: int, sent: list[float]) -> None:
    """`count` clicks CLICK_EVERY_S apart, silence between; each click's first sample's
    departure (when the source's queue drains to it) into `sent`."""
    tone = click()
    per_click = int(CLICK_EVERY_S * SAMPLE_RATE) // FRAME_SAMPLES
    for _ in range(count):
        for k in range(per_click):
            chunk = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            start = k * FRAME_SAMPLES
            if start < tone.size:
                part = tone[start : start + FRAME_SAMPLES]
                chunk[: part.size] = part
            await source.capture_frame(
                rtc.AudioFrame(chunk.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
            )
            if k == 0:  # this frame leaves once what is queued before it has
                sent.append(time.monotonic() + source.queued_duration - FRAME_MS / 1000)


def pair_up(sent: Sequence[float], arrived: Sequence[float], max_s: float = 0.5) -> list[float]:
    """Each send's delay to the first arrival after it within `max_s` (a lost click: none)."""
    out = []
    for s in sent:
        i = bisect.bisect_left(arrived, s)
        if i < len(arrived) and arrived[i] - s <= max_s:
            out.append(arrived[i] - s)
    return out


async def measure_floor(url: str, api_key: str, api_secret: str, clicks: int) -> dict[str, Summary]:
    room_name = f"floor-{int(time.time())}"
    sender, echo = rtc.Room(), rtc.Room()
    heard_back: list[float] = []
    at_echo: list[float] = []
    sent: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    def on_sender_track(t: rtc.Track, *_: object) -> None:
        if t.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.append(asyncio.ensure_future(_hear_onsets(t, heard_back)))

    sender.on("track_subscribed", on_sender_track)
    await echo.connect(url, make_token(api_key, api_secret, room=room_name, identity="echo"))
    echo_source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=FRAME_MS * 2)
    await echo.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("echo", echo_source)
    )
    tasks.append(asyncio.ensure_future(_echo(echo, echo_source, at_echo)))
    await sender.connect(url, make_token(api_key, api_secret, room=room_name, identity="clicker"))
    source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=FRAME_MS * 2)
    await sender.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("clicks", source)
    )
    try:
        await _send_clicks(source, 3, [])  # the tracks settle (subscriptions, jitter buffers)
        await _send_clicks(source, clicks, sent)
        await asyncio.sleep(0.5)  # the last echo comes back (bounded: pair_up drops the rest)
    finally:
        for task in tasks:
            task.cancel()
        await sender.disconnect()
        await echo.disconnect()
    one_way = pair_up(sent, at_echo)
    round_trip = pair_up(sent, heard_back, max_s=1.0)
    return {
        "one_leg": summarize(one_way, with_max=True),
        "round_trip": summarize(round_trip, with_max=True),
        "half_round_trip": summarize((r / 2 for r in round_trip), with_max=True),
    }


async def _hear_onsets(
    track: rtc.Track, onsets: list[float], forward_to: rtc.AudioSource | None = None
) -> None:
    """The arrival time of each loud frame that follows a quiet one into `onsets`; every frame
    also into `forward_to` (the echo) when given."""
    stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
    was_loud = False
    async for ev in stream:
        loud = is_voiced(ev.frame)
        if loud and not was_loud:
            onsets.append(time.monotonic())
        was_loud = loud
        if forward_to is not None:
            await forward_to.capture_frame(ev.frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stopwatch", description=__doc__)
    parser.add_argument("--clicks", type=int, default=40, help="clicks timed (0.6 s apart)")
    parser.add_argument("--json", type=Path, help="write the summaries here")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "test-artifacts" / "stopwatch")
    args = parser.parse_args(argv)
    if args.clicks < 1:
        parser.error("--clicks needs a positive integer")
    lk = start_livekit_server(args.log_dir, name="stopwatch-livekit")
    try:
        floor = asyncio.run(measure_floor(lk.url, lk.api_key, lk.api_secret, args.clicks))
    finally:
        lk.stop()
    print("one WebRTC leg on this livekit-server, idle (ms):")
    print(format_table([(k, {n: _ms(v) for n, v in s.items()}) for k, s in floor.items()], "ms"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"clicks": args.clicks, **floor}, indent=2) + "\n")
    return 0 if floor["one_leg"]["count"] else 1


def _ms(v: float | int | None) -> float | int | None:
    return v if v is None or isinstance(v, int) else v * 1000


if __name__ == "__main__":
    sys.exit(main())
