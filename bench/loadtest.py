"""Load test: N simulated users talk with the agent at once, each in its own LiveKit room.

    python -m bench.loadtest --users 1,4,8 --turns 5 --json out.json --plot out.png
    python -m bench.loadtest --spawn-stack --users 4 --turns 3      # self-contained, local

Every user is a real LiveKit participant (harness.participant.TestParticipant) whose token
dispatches the agent (RoomConfiguration). It waits for the agent's greeting, then for each
turn speaks an espeak-ng utterance in real time and measures, at the listener, the end of its
speech → the first audible agent audio (end to end). A turn without an answer within
--answer-timeout is a failed turn; a user whose agent never came, or left early, is a dropped
session. Users start staggered (--stagger seconds apart).

The stage breakdown (end_of_turn, transcript, llm_ttft, tts_ttfb, end_to_end as the agent sees
it) comes from the workers' Prometheus histograms `kyutai_agent_turn_latency_seconds`, read
before and after each run (--agent-metrics URL[,URL...]; set by --spawn-stack). llm_ttft and
tts_ttfb include the greetings.

--turn-modes compares end-of-turn modes in one run: `stt`, Kyutai's pause heads (the agent's
default, KYUTAI_TURN_DETECTION=stt), `vad`, 0.35 s of Silero VAD silence
(KYUTAI_TURN_DETECTION=vad KYUTAI_VAD_MIN_SILENCE_S=0.35), and `stt-full-flush`, the pause heads
with the STT flushed through the whole pause as before the cut in docs/latency.md
(KYUTAI_STT_FLUSH=full). Each mode's rooms are dispatched to its own agent: --spawn-stack
starts one worker per mode (agent name kyutai-MODE) on the same livekit-server, inference
server and stub LLM; against a deployment, name them with
--agent-name stt=NAME,vad=NAME (and --agent-metrics stt=URL,vad=URL); there the mode names
only label what those workers were started with. At each N the modes share rounds of N
simultaneous conversations: in round k, user i talks to mode number (i + k) mod M (M modes), so
with N >= 2 every round mixes the modes under one load, N stays the number of simultaneous
conversations, and after M rounds each mode has had N conversations of --turns turns
(--rounds R repeats this R times; at N = 1 the modes alternate round by round). Printed per N:
each mode's count, mean, p50, p90, max of end of speech → first audible answer, failed turns
and dropped sessions side by side, with the ratio stt / vad (or stt / stt-full-flush) of p50
and p90. The JSON gets one entry of "runs" per N and mode (its "turn_mode"), and, with several
modes, "comparison": one entry per N with each mode's figures and the ratio.

Where the time goes: every answered turn is joined with the worker's marks of the reply it
heard (the `turn waterfall` lines of the workers' logs, agent.ops.waterfall; --spawn-stack
reads its worker's log) and cut into hops on one monotonic clock: uplink, STT end of speech,
commit, LLM request, LLM first token, text to the TTS, TTS first audio, into the room,
downlink. Printed per run as p50/p90 per hop with the network, model and orchestration sums;
the JSON's "waterfall" has them per turn; the plot stacks the hops' medians. Each user reads
its receive jitter buffer for the agent's audio as it leaves (part of the downlink; the JSON's
"jitter_buffer", one per session). --stopwatch adds a hidden third participant per room that
times each turn from what it hears. With one turn mode and --spawn-stack, "cost" gives each
process's CPU seconds per conversation-minute and the job processes' peak memory (bench.cost).

It connects to LIVEKIT_URL with LIVEKIT_API_KEY / LIVEKIT_API_SECRET, e.g. to the dev stack
(`bash scripts/dev-stack.sh`: LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey
LIVEKIT_API_SECRET=secret; it exports no metrics unless AGENT_PROMETHEUS_PORT is set).

--spawn-stack runs the dev stack's processes and settings instead (livekit-server, the
inference server with the tiny models, the stub LLM, a worker per --turn-modes mode with
the shipped defaults but for its mode), on free loopback
ports, with `python -m agent start` (no file watching), the workers' metrics on, and these
differences, sized for the largest N of --users and printed when it starts:
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from agent.ops.waterfall import HOPS, parse_log
from harness.join_token import make_token
from harness.livekit_server import ROOT
from harness.participant import TestParticipant
from harness.speech import speech_samples

from .cost import WORKER, CostMeter, cost_table
from .local_stack import local_stack
from .stats import (
    STAGES,
    Histogram,
    Summary,
    format_ratios,
    format_side_by_side,
    format_table,
    merge_histograms,
    parse_histograms,
    ratios,
    stage_summaries,
    summarize,
)
from .stopwatch import AGENT_PREFIX, Stopwatch, turn_seen
from .waterfall import (
    HeardTurn,
    JitterBuffer,
    jitter_buffer,
    match,
    summarize_hops,
    turn_hops,
    waterfall_table,
)

UTTERANCES = (
    "What is the weather like today?",
    "Can you tell me a fun fact about the moon?",
    "How do I make a good cup of tea?",
    "What should I read next?",
    "Why is the sky blue?",
    "Tell me something about music.",
)
TOKEN_TTL_S = 2 * 3600
ROUND_PAUSE_S = 1.0  # between two rounds at one N: the last round's sessions close


@dataclass(frozen=True)
class TurnMode:
    """An end-of-turn mode the load test can compare: the worker variables that select it."""

    name: str
    label: str
    env: dict[str, str]

    @property
    def title(self) -> str:
        return f"{self.name} ({self.label})"


TURN_MODES: dict[str, TurnMode] = {
    m.name: m
    for m in (
        TurnMode("stt", "pause heads", {"KYUTAI_TURN_DETECTION": "stt"}),
        TurnMode(
            "vad",
            "VAD 0.35 s",
            {"KYUTAI_TURN_DETECTION": "vad", "KYUTAI_VAD_MIN_SILENCE_S": "0.35"},
        ),
        # the pause heads with the flush as it was before docs/latency.md's cut
        TurnMode(
            "stt-full-flush",
            "pause heads, full flush",
            {"KYUTAI_TURN_DETECTION": "stt", "KYUTAI_STT_FLUSH": "full"},
        ),
    )
}
DEFAULT_TURN_MODE = "stt"  # the agent's default (agent/settings.py: turn_detection)
# compared as a / b, the first pair a run has both of
RATIOS = (("stt", "vad"), ("stt", "stt-full-flush"))


def spawned_agent(mode: str) -> str:
    """The agent name of --spawn-stack's worker for turn mode `mode`."""
    return f"kyutai-{mode}"


def parse_turn_modes(text: str) -> list[str]:
    """`stt,vad` → ["stt", "vad"]; ValueError on an unknown or repeated mode, or none."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes:
        raise ValueError("--turn-modes needs at least one mode")
    unknown = [m for m in modes if m not in TURN_MODES]
    if unknown:
        raise ValueError(f"unknown turn mode {unknown[0]!r} (known: {', '.join(TURN_MODES)})")
    if len(set(modes)) != len(modes):
        raise ValueError(f"--turn-modes names a mode twice: {text!r}")
    return modes


def split_per_mode(text: str, modes: Sequence[str], what: str) -> dict[str, list[str]]:
    """Comma-separated values of option `what`, each `MODE=value` (for that turn mode) or a
    plain value (for the only mode: with several, a plain value is a ValueError)."""
    out: dict[str, list[str]] = {m: [] for m in modes}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        mode, sep, value = entry.partition("=")
        if sep and mode.strip() in TURN_MODES:
            if mode.strip() not in out:
                raise ValueError(f"{what}: {mode.strip()!r} is not one of --turn-modes")
            out[mode.strip()].append(value.strip())
        elif len(modes) == 1:
            out[modes[0]].append(entry)
        else:
            raise ValueError(
                f"{what}: with several --turn-modes, say which mode each value is for "
                f"(MODE=VALUE): {entry!r}"
            )
    return out


def schedule(users: int, modes: Sequence[str], repeats: int = 1) -> list[list[str]]:
    """The rounds at one N: each a list of N simultaneous conversations' turn modes. Round k
    gives user i modes[(i + k) % M]: every mode gets N conversations per M rounds, and a
    round of N >= M users mixes all the modes."""
    m = len(modes)
    return [[modes[(i + k) % m] for i in range(users)] for k in range(repeats * m)]


def utterance(text: str) -> np.ndarray:
    """A user's turn: `text` spoken by espeak-ng (cached), 0.3 s of silence before it."""
    return speech_samples(text, lead_silence_s=0.3, trail_silence_s=0.2)


@dataclass
class TurnResult:
    user: int
    turn: int
    end_to_end: float | None  # None: no answer within the timeout
    round: int = 0
    # for the waterfall: the room, the last voiced sample sent, the first audible answer
    heard: HeardTurn | None = None
    stopwatch: float | None = None  # the same turn, timed by a hidden third participant


class SimUser(TestParticipant):
    """A load-test user: a TestParticipant (made with record_samples=False: the loudness of
    each received frame is all it needs) whose waits answer True/False instead of raising."""

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Whether `predicate()` holds within `timeout` s; False as soon as the room is gone."""
        try:
            await self.wait_for(
                lambda: predicate() or not self.room.isconnected(),
                timeout=timeout,
                what="the condition",
            )
        except TimeoutError:
            return False
        return predicate()


@dataclass
class RunConfig:
    url: str
    api_key: str
    api_secret: str
    turns: int
    stagger_s: float
    answer_timeout_s: float
    join_timeout_s: float
    metadata: str
    stopwatch: bool = False


@dataclass
class RunResult:
    users: int
    turn_mode: str = DEFAULT_TURN_MODE
    turns: list[TurnResult] = field(default_factory=list)
    dropped_sessions: int = 0
    stages: dict[str, Summary] = field(default_factory=dict)
    wall_s: float = 0.0
    waterfall: list[dict[str, float | None]] = field(default_factory=list)  # one per turn
    unmatched: int = 0  # answered turns whose reply the worker logs did not show
    conversation_s: float = 0.0  # greeting heard → leaving, summed over the users
    cost: dict[str, Any] | None = None  # bench.cost: CPU per process, job memory
    jitter_buffers: list[JitterBuffer] = field(default_factory=list)  # one per session

    @property
    def failed_turns(self) -> int:
        return sum(1 for t in self.turns if t.end_to_end is None)

    def summary(self) -> Summary:
        return summarize(
            (t.end_to_end for t in self.turns if t.end_to_end is not None), with_max=True
        )


class Progress:
    def __init__(self, users: int, turns: int, rounds: int = 1) -> None:
        self.total = users * turns * rounds
        self.users = users
        self.sessions = users * rounds
        self.rounds = rounds
        self.round = 0
        self.joined = self.done = self.failed = self.dropped = 0
        self.last: float | None = None
        self.started = time.monotonic()

    def show(self) -> None:
        last = "—" if self.last is None else f"{self.last:.2f}s"
        rounds = f" round {self.round + 1}/{self.rounds}" if self.rounds > 1 else ""
        print(
            f"\r[{time.monotonic() - self.started:6.1f}s] N={self.users}{rounds} joined "
            f"{self.joined}/{self.sessions}  turns {self.done}/{self.total}  failed {self.failed}  "
            f"dropped {self.dropped}  last e2e {last}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )


async def spoken_turn(user: SimUser, text: str, timeout: float) -> tuple[float, float | None]:
    """Say `text`: when its last voiced sample was sent, and when the first audible answer
    came (None without one within `timeout`), on the monotonic clock."""
    _onset, end = await user.say_samples(utterance(text))
    answered = await user.wait_until(lambda: user.agent_audio_after(end) is not None, timeout)
    first = user.agent_audio_after(end)
    return end, first if answered else None


async def simulate_user(
    index: int,
    round_no: int,
    agent_name: str,
    cfg: RunConfig,
    room: str,
    progress: Progress,
    result: RunResult,
) -> None:
    await asyncio.sleep(index * cfg.stagger_s)  # staggered start, not synchronisation
    user = SimUser(identity=f"user-{index}", record_samples=False)
    token = make_token(
        cfg.api_key,
        cfg.api_secret,
        room=room,
        identity=user.identity,
        dispatch_agent=agent_name,
        dispatch_metadata=cfg.metadata,
        ttl_s=TOKEN_TTL_S,
    )
    dropped = False
    joined_at: float | None = None
    stopwatch = Stopwatch() if cfg.stopwatch else None
    try:
        await user.join(cfg.url, token)
        if stopwatch is not None:  # after the user: the user's join dispatches the agent
            await stopwatch.join(cfg.url, cfg.api_key, cfg.api_secret, room)
        await user.publish_microphone()  # on from the start, like a real one
        # The greeting: the agent joins, speaks, and listens.
        ok = await user.wait_until(
            lambda: user.agent_state() == "listening" and user.agent_audio_after(0.0) is not None,
            cfg.join_timeout_s,
        )
        if not ok:
            dropped = True
            return
        progress.joined += 1
        progress.show()
        joined_at = time.monotonic()
        for turn in range(cfg.turns):
            if user.agent_left or not user.room.isconnected():
                dropped = True
                return
            # Speak once the agent has been quiet for a moment (its previous answer is over).
            await user.wait_until(
                lambda: (
                    user.agent_state() == "listening"
                    and user.agent_quiet_since(time.monotonic() - 0.3)
                ),
                cfg.answer_timeout_s + 20,
            )
            text = UTTERANCES[(index + turn) % len(UTTERANCES)]
            end, heard_at = await spoken_turn(user, text, cfg.answer_timeout_s)
            latency = None if heard_at is None else heard_at - end
            heard = None if heard_at is None else HeardTurn(room, end, heard_at)
            result.turns.append(TurnResult(index, turn, latency, round_no, heard))
            if stopwatch is not None and heard is not None:
                result.turns[-1].stopwatch = await timed_by(stopwatch, user, heard.user_end)
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
        if joined_at is not None:
            result.conversation_s += time.monotonic() - joined_at
            buffer = await agent_jitter_buffer(user, room)
            if buffer is not None:
                result.jitter_buffers.append(buffer)
        await user.leave()
        if stopwatch is not None:
            await stopwatch.leave()


async def agent_jitter_buffer(user: SimUser, room: str) -> JitterBuffer | None:
    """The user's receive buffer for the agent's audio this session (the downlink's share
    that is the listener's own), or None when the track or its stats are gone."""
    for participant in user.room.remote_participants.values():
        if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            continue
        for pub in participant.track_publications.values():
            if pub.track is None or pub.kind != rtc.TrackKind.KIND_AUDIO:
                continue
            try:
                stats = await asyncio.wait_for(pub.track.get_stats(), 5)
            except Exception:  # the track went away, or the stats call failed: no figure
                return None
            for st in stats:
                if st.HasField("inbound_rtp"):
                    rtp = st.inbound_rtp.inbound
                    return jitter_buffer(
                        room,
                        rtp.jitter_buffer_delay,
                        rtp.jitter_buffer_target_delay,
                        rtp.jitter_buffer_minimum_delay,
                        rtp.jitter_buffer_emitted_count,
                    )
    return None


async def timed_by(stopwatch: Stopwatch, user: SimUser, around: float) -> float | None:
    """The stopwatch's time for the turn that ended near `around`, once the answer reached it
    too (bounded wait: it hears the room through the same server as the user)."""

    def seen() -> float | None:
        return turn_seen(stopwatch.of(user.identity), stopwatch.of(AGENT_PREFIX), around)

    await user.wait_until(lambda: seen() is not None, 5)
    return seen()


def scrape(urls: list[str]) -> dict[str, Histogram]:
    if not urls:
        return {}
    parts = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                parts.append(parse_histograms(resp.read().decode()))
        except OSError as exc:
            print(f"\ncould not read {url}: {exc}", file=sys.stderr)
    return merge_histograms(parts)


@dataclass
class Target:
    """Where one turn mode's rooms go: the agent that serves it, and its workers' metrics."""

    agent_name: str
    metrics_urls: list[str] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)  # its workers' logs, for the waterfall


async def stage_breakdown(
    urls: list[str], before: dict[str, Histogram], expected: int
) -> dict[str, Summary]:
    """The stage summaries of what these workers observed since `before`. The last turns'
    metrics reach the worker's registry just after the audio: let the job processes flush them
    (bounded wait for the end_to_end count to reach `expected`)."""
    deadline = time.monotonic() + 5
    after = await asyncio.to_thread(scrape, urls)
    while time.monotonic() < deadline:
        got = after.get("end_to_end")
        base = before.get("end_to_end")
        if got and got.count - (base.count if base else 0) >= expected:
            break
        await asyncio.sleep(0.25)
        after = await asyncio.to_thread(scrape, urls)
    return stage_summaries(before, after)


async def run_load(
    cfg: RunConfig,
    users: int,
    targets: Mapping[str, Target],
    repeats: int = 1,
    cost_roles: Mapping[str, int] | None = None,
) -> dict[str, RunResult]:
    """N = `users` simultaneous conversations, in the rounds of `schedule` over the turn modes
    of `targets`: one RunResult per mode."""
    for text in UTTERANCES:
        utterance(text)  # generate fixtures before the clock starts
    results = {mode: RunResult(users=users, turn_mode=mode) for mode in targets}
    before: dict[str, dict[str, Histogram]] = {}
    for mode, target in targets.items():
        before[mode] = await asyncio.to_thread(scrape, target.metrics_urls)
    rounds = schedule(users, list(targets), repeats)
    progress = Progress(users, cfg.turns, len(rounds))
    progress.show()
    run_id = uuid.uuid4().hex[:6]
    meter = CostMeter(dict(cost_roles)) if cost_roles else None
    if meter is not None:
        meter.start()
    started = time.monotonic()
    for k, modes in enumerate(rounds):
        if k:
            await asyncio.sleep(ROUND_PAUSE_S)
        progress.round = k
        await asyncio.gather(
            *(
                simulate_user(
                    i,
                    k,
                    targets[mode].agent_name,
                    cfg,
                    f"loadtest-{run_id}-{k}-{i}",
                    progress,
                    results[mode],
                )
                for i, mode in enumerate(modes)
            )
        )
    wall_s = time.monotonic() - started
    if meter is not None:  # one turn mode (see Stack.cost_roles): all of it is that mode's
        (result,) = results.values()
        result.cost = meter.stop(result.conversation_s)
    print(file=sys.stderr)
    for mode, target in targets.items():
        result = results[mode]
        result.wall_s = wall_s  # the N's rounds together: the modes shared them
        if target.metrics_urls:
            expected = len([t for t in result.turns if t.end_to_end is not None])
            result.stages = await stage_breakdown(target.metrics_urls, before[mode], expected)
        if target.logs:
            await read_waterfall(result, target.logs)
    return results


async def read_waterfall(result: RunResult, logs: Sequence[Path]) -> None:
    """Each answered turn's hops, from the workers' logs (their job processes forward the
    lines to them: a bounded wait for the last turns' lines)."""
    heard = [t.heard for t in result.turns if t.heard is not None]
    deadline = time.monotonic() + 5
    while True:
        texts = await asyncio.to_thread(lambda: [p.read_text(errors="replace") for p in logs])
        records = [r for text in texts for r in parse_log(text)]
        marks = [match(turn, records) for turn in heard]
        if None not in marks or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    result.waterfall = [turn_hops(t, m) for t, m in zip(heard, marks, strict=True) if m]
    result.unmatched = sum(m is None for m in marks)


# --- reporting -----------------------------------------------------------------------------
def report_table(result: RunResult, several_modes: bool = False) -> str:
    rows: list[tuple[str, Summary]] = [("end_to_end (listener)", result.summary())]
    rows += [(f"agent {stage}", result.stages[stage]) for stage in STAGES if stage in result.stages]
    mode = f", turn mode {TURN_MODES[result.turn_mode].title}" if several_modes else ""
    text = (
        f"N={result.users} users{mode}: {len(result.turns)} turns, failed turns "
        f"{result.failed_turns}, dropped sessions {result.dropped_sessions}, "
        f"{result.wall_s:.0f}s\n" + format_table(rows)
    )
    seen = [(t.end_to_end, t.stopwatch) for t in result.turns if t.stopwatch is not None]
    if seen:
        listener, watch = summarize(a for a, _ in seen), summarize(b for _, b in seen)
        text += (
            "\n"
            + format_side_by_side({"listener": listener, "stopwatch": watch})
            + "\n"
            + format_ratios("stopwatch / listener", ratios(watch, listener))
        )
    if result.waterfall:
        text += (
            f"\nwaterfall of {len(result.waterfall)} turns ({result.unmatched} not in the "
            "worker logs), user's last voiced sample → first audible answer:\n"
            + waterfall_table(summarize_hops(result.waterfall))
        )
    if result.jitter_buffers:
        text += "\n" + jitter_buffer_line(result.jitter_buffers)
    if result.cost is not None:
        text += "\ncost of the run:\n" + cost_table(result.cost)
    return text


def jitter_buffer_line(buffers: Sequence[JitterBuffer]) -> str:
    """The listeners' receive buffers for the agent's audio: part of the downlink hop."""
    means = sorted(b.mean_ms for b in buffers)
    target = summarize([b.target_ms for b in buffers])["p50"]
    return (
        f"listener jitter buffer for the agent's audio, {len(buffers)} sessions: mean delay "
        f"p50 {summarize(means)['p50']:.1f} ms ({means[0]:.1f}-{means[-1]:.1f}), "
        f"target p50 {target:.1f} ms"
    )


def comparison(by_mode: Mapping[str, RunResult]) -> dict[str, Any]:
    """One N's turn modes side by side: each one's end-to-end summary at the listener
    (count, mean, p50, p90, p99, max), failed turns and dropped sessions, and the ratio
    a / b of p50 and p90 for the first pair of RATIOS the run has (None without both modes or
    without a value)."""
    users = {r.users for r in by_mode.values()}
    if len(users) != 1:
        raise ValueError(f"one N at a time, not {sorted(users)}")
    modes = {
        mode: {
            **r.summary(),
            "failed_turns": r.failed_turns,
            "dropped_sessions": r.dropped_sessions,
        }
        for mode, r in by_mode.items()
    }
    num, den = next(((a, b) for a, b in RATIOS if a in by_mode and b in by_mode), RATIOS[0])
    ratio: dict[str, Any] = {"of": num, "to": den}
    if num in by_mode and den in by_mode:
        ratio.update(ratios(by_mode[num].summary(), by_mode[den].summary()))
    else:
        ratio.update(dict.fromkeys(("p50", "p90")))
    return {"users": users.pop(), "modes": modes, "ratio": ratio}


def comparison_table(comp: Mapping[str, Any]) -> str:
    """A comparison() as text: the modes side by side, then the ratio line."""
    modes: Mapping[str, Mapping[str, Any]] = comp["modes"]
    columns = {TURN_MODES[m].title: stats for m, stats in modes.items()}
    count_rows = (("failed turns", "failed_turns"), ("dropped sessions", "dropped_sessions"))
    counts = {
        label: {TURN_MODES[m].title: int(stats[key]) for m, stats in modes.items()}
        for label, key in count_rows
    }
    ratio = comp["ratio"]
    lines = [
        f"N={comp['users']}: end of user speech → first audible agent audio at the listener (s)",
        format_side_by_side(columns, counts=counts),
    ]
    if ratio["of"] in modes and ratio["to"] in modes:
        label = f"{ratio['of']} / {ratio['to']}"
        lines.append(format_ratios(label, {k: ratio[k] for k in ("p50", "p90")}))
    return "\n".join(lines)


def group_by_users(results: Sequence[RunResult]) -> list[dict[str, RunResult]]:
    """Runs grouped by N (in order of first appearance), each group by turn mode."""
    groups: dict[int, dict[str, RunResult]] = {}
    for r in results:
        groups.setdefault(r.users, {})[r.turn_mode] = r
    return list(groups.values())


def run_json(r: RunResult) -> dict[str, Any]:
    return {
        "users": r.users,
        "turn_mode": r.turn_mode,
        "turns": len(r.turns),
        "failed_turns": r.failed_turns,
        "dropped_sessions": r.dropped_sessions,
        "wall_s": round(r.wall_s, 1),
        "end_to_end": r.summary(),
        "agent_stages": r.stages,
        "per_turn": [
            {"user": t.user, "round": t.round, "turn": t.turn, "end_to_end": t.end_to_end}
            for t in r.turns
        ],
        "conversation_s": round(r.conversation_s, 1),
        "cost": r.cost,
        "stopwatch": {
            "end_to_end": summarize(t.stopwatch for t in r.turns),
            "listener_same_turns": summarize(
                t.end_to_end for t in r.turns if t.stopwatch is not None
            ),
            "per_turn": [t.stopwatch for t in r.turns],
        },
        "waterfall": {
            "hops": summarize_hops(r.waterfall),
            "unmatched": r.unmatched,
            "per_turn": r.waterfall,
        },
        "jitter_buffer": [dataclasses.asdict(b) for b in r.jitter_buffers],
    }


def to_json(
    results: Sequence[RunResult],
    args: argparse.Namespace,
    targets: Mapping[str, Target] | None = None,
) -> dict[str, Any]:
    """The run's JSON: "config", "runs" (one per N and turn mode, in the order they ran), and
    with several turn modes "comparison" (one per N)."""
    modes = list(args.turn_modes)
    out: dict[str, Any] = {
        "config": {
            "turns": args.turns,
            "stagger_s": args.stagger,
            "answer_timeout_s": args.answer_timeout,
            "spawn_stack": args.spawn_stack,
            "machine": {"cpus": os.cpu_count()},
            "turn_modes": {
                mode: {
                    "agent_name": targets[mode].agent_name if targets else None,
                    "worker_env": TURN_MODES[mode].env if args.spawn_stack else None,
                }
                for mode in modes
            },
            "rounds_per_n": args.rounds * len(modes),
        },
        "runs": [run_json(r) for r in results],
    }
    if len(modes) > 1:
        out["comparison"] = [comparison(group) for group in group_by_users(results)]
    return out


def plot(results: Sequence[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    modes = list(dict.fromkeys(r.turn_mode for r in results))
    several = len(modes) > 1
    ns = list(dict.fromkeys(r.users for r in results))
    for j, mode in enumerate(modes):
        runs = [r for r in results if r.turn_mode == mode]
        xs_n = [r.users for r in runs]
        prefix = f"{mode} " if several else ""
        for key, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^--")):
            if several and key == "p99":
                continue
            ys = [r.summary()[key] for r in runs]
            ax1.plot(
                xs_n,
                [float(y) if y is not None else float("nan") for y in ys],
                style,
                label=f"{prefix}{key} end to end",
            )
        offset = (j - (len(modes) - 1) / 2) * 0.08
        for r in runs:
            xs = [t.end_to_end for t in r.turns if t.end_to_end is not None]
            ax1.scatter([r.users + offset] * len(xs), xs, s=8, alpha=0.3, color="gray")
    ax1.axhline(1.0, color="red", lw=0.8, ls=":", label="1 s target")
    ax1.set_xlabel("simultaneous users (N)")
    ax1.set_ylabel("end of user speech → first agent audio (s)")
    ax1.set_title("End-to-end latency at the listener")
    ax1.set_xticks(ns)
    ax1.legend()
    ax1.grid(alpha=0.3)

    bottom = np.zeros(len(results))
    labels = [f"{r.users} {r.turn_mode}" if several else str(r.users) for r in results]
    if any(r.waterfall for r in results):
        # the hops' medians stacked in order (their sum is near the listener's p50)
        stats = [summarize_hops(r.waterfall) for r in results]
        for hop in HOPS:
            p50s = np.array([float(st[hop.name].get("p50") or 0.0) for st in stats])
            ax2.bar(labels, p50s, bottom=bottom, label=f"{hop.name} ({hop.kind})")
            bottom += p50s
        ax2.set_ylabel("p50 seconds per hop (one clock)")
        ax2.set_title("Where the time goes: the waterfall")
    else:
        for stage in ("end_of_turn", "llm_ttft", "tts_ttfb"):
            means = np.array([float(r.stages.get(stage, {}).get("mean") or 0.0) for r in results])
            ax2.bar(labels, means, bottom=bottom, label=stage)
            bottom += means
        ax2.set_ylabel("mean seconds (agent's metrics)")
        ax2.set_title("Where the time goes (agent's stage means)")
    ax2.set_xlabel("simultaneous users (N)" + (" and turn mode" if several else ""))
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
    targets: dict[str, Target]  # by turn mode, in --turn-modes order
    # the processes whose CPU and memory a run measures (role → pid; a worker's whole tree):
    # with one worker only, so that its cost is that of one turn mode's conversations
    cost_roles: dict[str, int] | None = None


SLOTS = "STT and TTS slots"
WORKERS = "agent workers"
MIN_SLOTS = 8  # what the e2e fixtures and the barge-in bench give the tiny inference server
WORKER_MAX_JOBS = 16  # the worker's default AGENT_MAX_JOBS


@dataclass(frozen=True)
class StackChange:
    """One way --spawn-stack's stack differs from scripts/dev-stack.sh's, and why."""

    setting: str  # SLOTS, WORKERS, or a variable of every worker
    value: str
    dev_stack: str
    why: str


def stack_changes(
    users: int | None, slots: int = 0, modes: Sequence[str] | None = None
) -> list[StackChange]:
    """The differences for at most `users` simultaneous users and the turn modes `modes`
    (None, None: the rule, for --help)."""
    if users is None:
        slot_value = str(slots) if slots else f"max({MIN_SLOTS}, N)"
    else:
        slot_value = str(slots or max(MIN_SLOTS, users))
    changes = [
        StackChange(
            SLOTS,
            f"{slot_value} each (--slots)",
            "the server's default for the device (8 STT / 4 TTS on CPU)",
            "every simultaneous conversation holds one STT and one TTS slot",
        ),
        StackChange(
            "KYUTAI_SILENCE_TIMEOUT_S",
            "60",
            "the worker's default, shorter than --answer-timeout",
            "the agent's nudge after the user's silence must not be taken for an answer",
        ),
        StackChange(
            "AGENT_NUM_IDLE_PROCESSES",
            "2",
            "the worker's default",
            "users join --stagger s apart: the next one finds a warm job process",
        ),
    ]
    if modes is None or list(modes) != [DEFAULT_TURN_MODE]:
        per_mode = "; ".join(
            f"{m.name}: {' '.join(f'{k}={v}' for k, v in m.env.items())}"
            for m in TURN_MODES.values()
            if modes is None or m.name in modes
        )
        changes.append(
            StackChange(
                WORKERS,
                "one per mode of --turn-modes, agent name kyutai-MODE, with its mode's "
                f"variables ({per_mode})"
                if modes is None
                else f"{len(modes)}: {', '.join(spawned_agent(m) for m in modes)} ({per_mode})",
                f"one worker, the default turn mode ({DEFAULT_TURN_MODE})",
                "the turn modes compared in one run share one livekit-server, inference "
                "server and stub LLM, and the same load",
            )
        )
    if users is None or users > WORKER_MAX_JOBS:
        changes.append(
            StackChange(
                "AGENT_MAX_JOBS",
                "N, when N > 16" if users is None else str(users),
                f"the worker's default ({WORKER_MAX_JOBS})",
                "one job per user",
            )
        )
    return changes


def describe_changes(changes: list[StackChange]) -> str:
    return "".join(
        textwrap.fill(
            f"- {c.setting} = {c.value}; dev stack: {c.dev_stack}. Why: {c.why}.",
            width=92,
            initial_indent="  ",
            subsequent_indent="    ",
            break_on_hyphens=False,
        )
        + "\n"
        for c in changes
    )


@contextmanager
def spawn_stack(
    log_dir: Path, users: int, slots: int = 0, modes: Sequence[str] = (DEFAULT_TURN_MODE,)
) -> Iterator[Stack]:
    """The dev stack's processes on free loopback ports, sized for `users` (stack_changes),
    one worker per turn mode of `modes`; stopped on exit."""
    changes = stack_changes(users, slots, modes)
    shared_env = {c.setting: c.value for c in changes if c.setting not in (SLOTS, WORKERS)}
    what = "a worker" if len(modes) == 1 else f"{len(modes)} workers ({', '.join(modes)})"
    print(
        f"starting livekit-server, inference server (tiny), stub LLM, {what}: the dev "
        f"stack's settings for N={users}, except\n{describe_changes(changes)}",
        file=sys.stderr,
    )
    workers = {spawned_agent(mode): {**shared_env, **TURN_MODES[mode].env} for mode in modes}
    n_slots = slots or max(MIN_SLOTS, users)
    with local_stack(log_dir, workers, slots=n_slots, prefix="loadtest") as stack:
        targets = {
            mode: Target(worker.agent_name, [worker.metrics_url], [worker.handle.process.log_path])
            for mode, worker in zip(modes, stack.workers.values(), strict=True)
        }
        lk = stack.livekit
        roles = None
        if len(stack.workers) == 1:
            (worker,) = stack.workers.values()
            roles = {
                WORKER: worker.handle.process.proc.pid,
                "livekit-server": lk.process.proc.pid,
                "inference server": stack.inference.process.pid,
                "load generator + stub LLM": os.getpid(),
            }
        yield Stack(lk.url, lk.api_key, lk.api_secret, targets, roles)


def deployment_targets(
    modes: Sequence[str], agent_names: str, agent_metrics: str
) -> dict[str, Target]:
    """Without --spawn-stack: each turn mode's agent name and metrics URLs from --agent-name
    and --agent-metrics (`MODE=value` entries; plain ones with a single mode)."""
    names = split_per_mode(agent_names, modes, "--agent-name")
    metrics = split_per_mode(agent_metrics, modes, "--agent-metrics")
    targets = {}
    for mode in modes:
        if len(names[mode]) != 1:
            raise ValueError(
                f"--agent-name: one agent name for turn mode {mode!r}, not {names[mode]} "
                "(several modes: --agent-name stt=NAME,vad=NAME)"
            )
        targets[mode] = Target(names[mode][0], metrics[mode])
    return targets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadtest",
        description=f"{__doc__}{describe_changes(stack_changes(None))}",
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
        "--turn-modes",
        default=DEFAULT_TURN_MODE,
        help=f"end-of-turn modes compared in one run, comma-separated, from "
        f"{', '.join(m.title for m in TURN_MODES.values())} (default: {DEFAULT_TURN_MODE}, "
        "the agent's default); e.g. stt,vad: see above",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="at each N, each mode gets --rounds x N conversations, in --rounds x (number of "
        "modes) rounds of N simultaneous ones (see above)",
    )
    parser.add_argument(
        "--agent-name",
        default=os.environ.get("LIVEKIT_AGENT_NAME", "kyutai-agent"),
        help="without --spawn-stack: the agent the rooms are dispatched to; with several "
        "--turn-modes one per mode, MODE=NAME,... (--spawn-stack names its own workers)",
    )
    parser.add_argument(
        "--metadata",
        default='{"character": "watercooler"}',
        help="dispatch metadata (the character)",
    )
    parser.add_argument(
        "--agent-metrics",
        default=os.environ.get("LOADTEST_AGENT_METRICS", ""),
        help="workers' Prometheus URLs (comma-separated) for the stage breakdown; with "
        "several --turn-modes MODE=URL,... (--spawn-stack sets them)",
    )
    parser.add_argument(
        "--spawn-stack",
        action="store_true",
        help="start the dev stack's processes (see above) on free loopback ports",
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=0,
        help=f"--spawn-stack: STT and TTS slots each (0 = the largest N, at least {MIN_SLOTS})",
    )
    parser.add_argument(
        "--stopwatch",
        action="store_true",
        help="a hidden third participant in each room times every turn too (the user's last "
        "loud frame → the agent's first, as both reach it): a check on the listener's clock",
    )
    parser.add_argument("--log-dir", type=Path, default=ROOT / "test-artifacts" / "loadtest")
    args = parser.parse_args(argv)
    args.user_counts = [int(n) for n in str(args.users).split(",") if n.strip()]
    if not args.user_counts or min(args.user_counts) < 1:
        parser.error("--users needs positive integers")
    if args.rounds < 1:
        parser.error("--rounds needs a positive integer")
    try:
        args.turn_modes = parse_turn_modes(args.turn_modes)
        args.targets = (
            None
            if args.spawn_stack
            else deployment_targets(args.turn_modes, args.agent_name, args.agent_metrics)
        )
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def run_all(args: argparse.Namespace, stack: Stack) -> list[RunResult]:
    """Each N of --users in turn; the turn modes' results side by side after each, and all
    of them again at the end."""
    several = len(stack.targets) > 1
    cfg = RunConfig(
        url=stack.url,
        api_key=stack.api_key,
        api_secret=stack.api_secret,
        turns=args.turns,
        stagger_s=args.stagger,
        answer_timeout_s=args.answer_timeout,
        join_timeout_s=args.join_timeout,
        metadata=args.metadata,
        stopwatch=args.stopwatch,
    )
    results: list[RunResult] = []
    tables = []
    for n in args.user_counts:
        by_mode = await run_load(cfg, n, stack.targets, args.rounds, stack.cost_roles)
        for result in by_mode.values():
            print(report_table(result, several), flush=True)
            print(flush=True)
        if several:
            tables.append(comparison_table(comparison(by_mode)))
            print(tables[-1] + "\n", flush=True)
        results.extend(by_mode.values())
    if len(tables) > 1:
        print("all N:\n\n" + "\n\n".join(tables) + "\n", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack_ctx:
        if args.spawn_stack:
            stack = stack_ctx.enter_context(
                spawn_stack(args.log_dir, max(args.user_counts), args.slots, args.turn_modes)
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
            stack = Stack(
                os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"), key, secret, args.targets
            )
        results = asyncio.run(run_all(args, stack))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(results, args, stack.targets), indent=2) + "\n")
    if args.plot:
        plot(results, args.plot)
    bad = sum(r.failed_turns + r.dropped_sessions for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
