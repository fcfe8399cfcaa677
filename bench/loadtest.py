"""Load test: N simulated users talk with the agent at once, each in its own LiveKit room.

    python -m bench.loadtest --users 1,4,8 --turns 5 --json out.json --plot out.png
    python -m bench.loadtest --spawn-stack --users 4 --turns 3      # self-contained, local

Every user is a real LiveKit participant (livekit rtc SDK) whose token dispatches the agent
(RoomConfiguration). It waits for the agent's greeting, then for each turn speaks an
espeak-ng utterance in real time and measures, at the listener, the end of its speech → the
first audible agent audio (end to end). A turn without an answer within --answer-timeout is a
failed turn; a user whose agent never came, or left early, is a dropped session. Users start
staggered (--stagger seconds apart).

The stage breakdown (end_of_turn, transcript, llm_ttft, tts_ttfb, end_to_end as the agent sees
it) comes from the workers' Prometheus histograms `kyutai_agent_turn_latency_seconds`, read
before and after each run (--agent-metrics URL[,URL...]; set by --spawn-stack). llm_ttft and
tts_ttfb include the greetings.

It connects to LIVEKIT_URL with LIVEKIT_API_KEY / LIVEKIT_API_SECRET. --spawn-stack starts a
livekit-server, the tiny inference server, a stub LLM and one worker on free loopback ports.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import wave
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from livekit import api, rtc

from .loadstats import (
    STAGES,
    Histogram,
    Summary,
    format_table,
    merge_histograms,
    parse_histograms,
    stage_summaries,
    summarize,
)

SAMPLE_RATE = 24000
FRAME_SAMPLES = 480  # 20 ms
MIN_RMS = 0.01  # an agent frame at least this loud is audible
ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / ".cache" / "speech-fixtures"
UTTERANCES = (
    "What is the weather like today?",
    "Can you tell me a fun fact about the moon?",
    "How do I make a good cup of tea?",
    "What should I read next?",
    "Why is the sky blue?",
    "Tell me something about music.",
)


# --- speech fixtures (espeak-ng) -----------------------------------------------------------
def speech_samples(text: str, *, lead_s: float = 0.3, trail_s: float = 0.2) -> np.ndarray:
    """`text` spoken by espeak-ng, float32 mono at 24 kHz, cached under .cache/."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    key = hashlib.sha256(f"loadtest|{text}|{lead_s}|{trail_s}".encode()).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cached = CACHE_DIR / f"{key}.npy"
    if cached.exists():
        return np.asarray(np.load(cached), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en", "-s", "160", "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        with wave.open(str(raw), "rb") as wav:
            rate = wav.getframerate()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    samples = data.astype(np.float32) / 32768.0
    n_out = round(len(samples) / rate * SAMPLE_RATE)
    samples = np.interp(
        np.arange(n_out) / SAMPLE_RATE, np.arange(len(samples)) / rate, samples
    ).astype(np.float32)
    out = np.concatenate(
        [
            np.zeros(round(lead_s * SAMPLE_RATE), np.float32),
            samples,
            np.zeros(round(trail_s * SAMPLE_RATE), np.float32),
        ]
    )
    tmp_path = cached.with_suffix(".tmp.npy")
    np.save(tmp_path, out)
    tmp_path.replace(cached)
    return out


# --- one simulated user --------------------------------------------------------------------
def make_token(
    api_key: str, api_secret: str, room: str, identity: str, agent_name: str, metadata: str
) -> str:
    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_ttl(datetime.timedelta(hours=2))
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
        .with_room_config(
            api.RoomConfiguration(
                agents=[api.RoomAgentDispatch(agent_name=agent_name, metadata=metadata)]
            )
        )
        .to_jwt()
    )


@dataclass
class TurnResult:
    user: int
    turn: int
    end_to_end: float | None  # None: no answer within the timeout


@dataclass
class SimUser:
    """A participant that speaks PCM in real time and notes when the agent is audible."""

    index: int
    room: rtc.Room = field(default_factory=rtc.Room)
    loud_frames: list[float] = field(default_factory=list)  # arrival times of audible frames
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    agent_seen: bool = False
    agent_left: bool = False
    _pending: list[tuple[np.ndarray, asyncio.Future[float] | None]] = field(default_factory=list)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _source: rtc.AudioSource | None = None

    async def join(self, url: str, token: str) -> None:
        self.room.on("track_subscribed", self._on_track)
        self.room.on("participant_connected", self._on_participant)
        self.room.on("participant_disconnected", self._on_left)
        self.room.on("participant_attributes_changed", lambda *_: self.changed.set())
        self.room.on("disconnected", lambda *_: self.changed.set())
        await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))
        for p in self.room.remote_participants.values():
            self._on_participant(p)
        self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=40)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self._spawn(self._microphone())

    async def leave(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.room.disconnect()

    def agent(self) -> rtc.RemoteParticipant | None:
        for p in self.room.remote_participants.values():
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return p
        return None

    def agent_state(self) -> str | None:
        agent = self.agent()
        return agent.attributes.get("lk.agent.state") if agent else None

    def audible_after(self, t: float) -> float | None:
        for at in self.loud_frames:
            if at >= t:
                return at
        return None

    def quiet_since(self, t: float) -> bool:
        return not self.loud_frames or self.loud_frames[-1] < t

    async def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.room.isconnected():
                return bool(predicate())
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.25))
            except TimeoutError:
                pass
        return True

    async def say(self, samples: np.ndarray) -> float:
        """Queue `samples` on the microphone; returns when its last loud frame was sent."""
        loop = asyncio.get_running_loop()
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        loud = np.flatnonzero(np.abs(pcm) > 300)
        last_loud = int(loud[-1]) // FRAME_SAMPLES if loud.size else 0
        end: asyncio.Future[float] = loop.create_future()
        for i, start in enumerate(range(0, len(pcm), FRAME_SAMPLES)):
            chunk = pcm[start : start + FRAME_SAMPLES]
            if len(chunk) < FRAME_SAMPLES:
                chunk = np.pad(chunk, (0, FRAME_SAMPLES - len(chunk)))
            self._pending.append((chunk, end if i == last_loud else None))
        return await end

    async def _microphone(self) -> None:
        assert self._source is not None
        silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        while True:
            chunk, done = self._pending.pop(0) if self._pending else (silence, None)
            await self._source.capture_frame(
                rtc.AudioFrame(chunk.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
            )
            if done is not None and not done.done():
                done.set_result(time.monotonic())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_participant(self, p: rtc.RemoteParticipant) -> None:
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self.agent_seen = True
        self.changed.set()

    def _on_left(self, p: rtc.RemoteParticipant) -> None:
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self.agent_left = True
        self.changed.set()

    def _on_track(self, track: rtc.Track, _pub: Any, p: rtc.RemoteParticipant) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._spawn(self._listen(track))

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        try:
            async for event in stream:
                data = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
                if float(np.sqrt(np.mean((data / 32768.0) ** 2))) >= MIN_RMS:
                    self.loud_frames.append(time.monotonic())
                    self.changed.set()
        except Exception:  # the track went away with the agent
            return
        finally:
            await stream.aclose()


@dataclass
class RunConfig:
    url: str
    api_key: str
    api_secret: str
    agent_name: str
    users: int
    turns: int
    stagger_s: float
    answer_timeout_s: float
    join_timeout_s: float
    metadata: str


@dataclass
class RunResult:
    users: int
    turns: list[TurnResult] = field(default_factory=list)
    dropped_sessions: int = 0
    stages: dict[str, Summary] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def failed_turns(self) -> int:
        return sum(1 for t in self.turns if t.end_to_end is None)

    def summary(self) -> Summary:
        return summarize(t.end_to_end for t in self.turns if t.end_to_end is not None)


class Progress:
    def __init__(self, users: int, turns: int) -> None:
        self.total = users * turns
        self.users = users
        self.joined = self.done = self.failed = self.dropped = 0
        self.last: float | None = None
        self.started = time.monotonic()

    def show(self) -> None:
        last = "—" if self.last is None else f"{self.last:.2f}s"
        print(
            f"\r[{time.monotonic() - self.started:6.1f}s] N={self.users} joined "
            f"{self.joined}/{self.users}  turns {self.done}/{self.total}  failed {self.failed}  "
            f"dropped {self.dropped}  last e2e {last}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )


async def simulate_user(
    index: int, cfg: RunConfig, run_id: str, progress: Progress, result: RunResult
) -> None:
    await asyncio.sleep(index * cfg.stagger_s)  # staggered start, not synchronisation
    user = SimUser(index)
    room = f"loadtest-{run_id}-{index}"
    token = make_token(
        cfg.api_key, cfg.api_secret, room, f"user-{index}", cfg.agent_name, cfg.metadata
    )
    dropped = False
    try:
        await user.join(cfg.url, token)
        # The greeting: the agent joins, speaks, and listens.
        ok = await user.wait_for(
            lambda: user.agent_state() == "listening" and bool(user.loud_frames), cfg.join_timeout_s
        )
        if not ok:
            dropped = True
            return
        progress.joined += 1
        progress.show()
        for turn in range(cfg.turns):
            if user.agent_left or not user.room.isconnected():
                dropped = True
                return
            # Speak once the agent has been quiet for a moment (its previous answer is over).
            await user.wait_for(
                lambda: (
                    user.agent_state() == "listening" and user.quiet_since(time.monotonic() - 0.3)
                ),
                cfg.answer_timeout_s + 20,
            )
            end = await user.say(speech_samples(UTTERANCES[(index + turn) % len(UTTERANCES)]))
            answered = await user.wait_for(
                lambda e=end: user.audible_after(e) is not None, cfg.answer_timeout_s
            )
            first = user.audible_after(end)
            latency = first - end if answered and first is not None else None
            result.turns.append(TurnResult(index, turn, latency))
            progress.done += 1
            progress.failed += latency is None
            progress.last = latency
            progress.show()
        if user.agent_left:
            dropped = True
    except Exception as exc:  # a user that could not connect is a dropped session
        print(f"\nuser {index}: {exc!r}", file=sys.stderr)
        dropped = True
    finally:
        if dropped:
            result.dropped_sessions += 1
            progress.dropped += 1
            progress.show()
        await user.leave()


def scrape(urls: list[str]) -> dict[str, Histogram]:
    parts = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                parts.append(parse_histograms(resp.read().decode()))
        except OSError as exc:
            print(f"\ncould not read {url}: {exc}", file=sys.stderr)
    return merge_histograms(parts)


async def run_load(cfg: RunConfig, metrics_urls: list[str]) -> RunResult:
    for text in UTTERANCES:
        speech_samples(text)  # generate fixtures before the clock starts
    result = RunResult(users=cfg.users)
    before = await asyncio.to_thread(scrape, metrics_urls) if metrics_urls else {}
    progress = Progress(cfg.users, cfg.turns)
    progress.show()
    run_id = uuid.uuid4().hex[:6]
    started = time.monotonic()
    await asyncio.gather(
        *(simulate_user(i, cfg, run_id, progress, result) for i in range(cfg.users))
    )
    result.wall_s = time.monotonic() - started
    print(file=sys.stderr)
    if metrics_urls:
        # The last turns' metrics reach the worker's registry just after the audio: let the
        # job processes flush them (bounded wait for the end_to_end count to settle).
        expected = len([t for t in result.turns if t.end_to_end is not None])
        deadline = time.monotonic() + 5
        after = await asyncio.to_thread(scrape, metrics_urls)
        while time.monotonic() < deadline:
            got = after.get("end_to_end")
            base = before.get("end_to_end")
            if got and got.count - (base.count if base else 0) >= expected:
                break
            await asyncio.sleep(0.25)
            after = await asyncio.to_thread(scrape, metrics_urls)
        result.stages = stage_summaries(before, after)
    return result


# --- reporting -----------------------------------------------------------------------------
def report_table(result: RunResult) -> str:
    rows: list[tuple[str, Summary]] = [("end_to_end (listener)", result.summary())]
    rows += [(f"agent {stage}", result.stages[stage]) for stage in STAGES if stage in result.stages]
    return (
        f"N={result.users} users: {len(result.turns)} turns, failed turns "
        f"{result.failed_turns}, dropped sessions {result.dropped_sessions}, "
        f"{result.wall_s:.0f}s\n" + format_table(rows)
    )


def to_json(results: list[RunResult], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "config": {
            "turns": args.turns,
            "stagger_s": args.stagger,
            "answer_timeout_s": args.answer_timeout,
            "spawn_stack": args.spawn_stack,
            "machine": {"cpus": os.cpu_count()},
        },
        "runs": [
            {
                "users": r.users,
                "turns": len(r.turns),
                "failed_turns": r.failed_turns,
                "dropped_sessions": r.dropped_sessions,
                "wall_s": round(r.wall_s, 1),
                "end_to_end": r.summary(),
                "agent_stages": r.stages,
                "per_turn": [
                    {"user": t.user, "turn": t.turn, "end_to_end": t.end_to_end} for t in r.turns
                ],
            }
            for r in results
        ],
    }


def plot(results: list[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ns = [r.users for r in results]
    for key, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^--")):
        ys = [r.summary()[key] for r in results]
        ax1.plot(
            ns,
            [float(y) if y is not None else float("nan") for y in ys],
            style,
            label=f"{key} end to end",
        )
    for r in results:
        xs = [t.end_to_end for t in r.turns if t.end_to_end is not None]
        ax1.scatter([r.users] * len(xs), xs, s=8, alpha=0.3, color="gray")
    ax1.axhline(1.0, color="red", lw=0.8, ls=":", label="1 s target")
    ax1.set_xlabel("simultaneous users (N)")
    ax1.set_ylabel("end of user speech → first agent audio (s)")
    ax1.set_title("End-to-end latency at the listener")
    ax1.set_xticks(ns)
    ax1.legend()
    ax1.grid(alpha=0.3)

    stages = ("end_of_turn", "llm_ttft", "tts_ttfb")
    bottom = np.zeros(len(results))
    for stage in stages:
        means = np.array([float(r.stages.get(stage, {}).get("mean") or 0.0) for r in results])
        ax2.bar([str(n) for n in ns], means, bottom=bottom, label=stage)
        bottom += means
    ax2.set_xlabel("simultaneous users (N)")
    ax2.set_ylabel("mean seconds (agent's metrics)")
    ax2.set_title("Where the time goes (agent's stage means)")
    ax2.legend()
    ax2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- a local stack -------------------------------------------------------------------------
@dataclass
class Stack:
    url: str
    api_key: str
    api_secret: str
    metrics_urls: list[str]


@contextmanager
def spawn_stack(log_dir: Path, slots: int, max_jobs: int) -> Iterator[Stack]:
    """livekit-server, the tiny inference server, a stub LLM and one worker, on free loopback
    ports, stopped on exit. Uses the test-suite helpers (tests/support) on purpose: this
    path only runs from a repository checkout."""
    sys.path.insert(0, str(ROOT))
    from harness.inference_server import start_inference_server
    from harness.livekit_server import start_livekit_server
    from harness.stub_llm import StubLLM
    from harness.worker import start_worker, tiny_stack_env

    with ExitStack() as stack:
        print(
            "starting livekit-server, inference server (tiny), stub LLM, worker…", file=sys.stderr
        )
        lk = start_livekit_server(log_dir, name="loadtest-livekit")
        stack.callback(lk.stop)
        inference = start_inference_server(
            ROOT / ".cache" / "kyutai-tiny",
            batch_size=slots,
            tts_batch_size=slots,
            log_dir=log_dir,
        )
        stack.callback(inference.stop)
        llm = stack.enter_context(StubLLM())
        env = tiny_stack_env(
            inference.url,
            inference.api_key,
            llm.base_url,
            AGENT_MAX_JOBS=str(max_jobs),
            AGENT_NUM_IDLE_PROCESSES="2",
            KYUTAI_SILENCE_TIMEOUT_S="60",
        )
        worker = start_worker(lk, log_dir, name="loadtest-worker", env=env)
        stack.callback(worker.stop)
        metrics_url = f"http://127.0.0.1:{env['AGENT_PROMETHEUS_PORT']}/metrics"
        yield Stack(lk.url, lk.api_key, lk.api_secret, [metrics_url])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--users", default="4", help="simultaneous users; a comma-separated list runs each in turn"
    )
    parser.add_argument("--turns", type=int, default=5, help="spoken turns per user")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a latency plot (PNG) here")
    parser.add_argument(
        "--stagger", type=float, default=0.7, help="seconds between two users' starts"
    )
    parser.add_argument(
        "--answer-timeout",
        type=float,
        default=10.0,
        help="seconds without agent audio after which a turn failed",
    )
    parser.add_argument(
        "--join-timeout",
        type=float,
        default=60.0,
        help="seconds for the agent to join and greet, else a dropped session",
    )
    parser.add_argument(
        "--agent-name", default=os.environ.get("LIVEKIT_AGENT_NAME", "kyutai-agent")
    )
    parser.add_argument(
        "--metadata",
        default='{"character": "watercooler"}',
        help="dispatch metadata (the character)",
    )
    parser.add_argument(
        "--agent-metrics",
        default=os.environ.get("LOADTEST_AGENT_METRICS", ""),
        help="workers' Prometheus URLs (comma-separated) for the stage breakdown",
    )
    parser.add_argument(
        "--spawn-stack",
        action="store_true",
        help="start livekit-server, inference (tiny), stub LLM and a worker",
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=0,
        help="--spawn-stack: STT/TTS slots of the inference server (0 = the largest N)",
    )
    parser.add_argument("--log-dir", type=Path, default=ROOT / "test-artifacts" / "loadtest")
    args = parser.parse_args(argv)
    args.user_counts = [int(n) for n in str(args.users).split(",") if n.strip()]
    if not args.user_counts or min(args.user_counts) < 1:
        parser.error("--users needs positive integers")
    return args


async def run_all(args: argparse.Namespace, stack: Stack) -> list[RunResult]:
    results = []
    for n in args.user_counts:
        cfg = RunConfig(
            url=stack.url,
            api_key=stack.api_key,
            api_secret=stack.api_secret,
            agent_name=args.agent_name,
            users=n,
            turns=args.turns,
            stagger_s=args.stagger,
            answer_timeout_s=args.answer_timeout,
            join_timeout_s=args.join_timeout,
            metadata=args.metadata,
        )
        result = await run_load(cfg, stack.metrics_urls)
        print(report_table(result), flush=True)
        print(flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack_ctx:
        if args.spawn_stack:
            top = max(args.user_counts)
            stack = stack_ctx.enter_context(
                spawn_stack(args.log_dir, args.slots or max(8, top), max(16, top))
            )
        else:
            key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
            if not key or not secret:
                print(
                    "set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
                    "(or use --spawn-stack)",
                    file=sys.stderr,
                )
                return 2
            metrics = [u.strip() for u in args.agent_metrics.split(",") if u.strip()]
            stack = Stack(
                os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"), key, secret, metrics
            )
        results = asyncio.run(run_all(args, stack))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(results, args), indent=2) + "\n")
    if args.plot:
        plot(results, args.plot)
    bad = sum(r.failed_turns + r.dropped_sessions for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
