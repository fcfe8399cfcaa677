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

It connects to LIVEKIT_URL with LIVEKIT_API_KEY / LIVEKIT_API_SECRET, e.g. to the dev stack
(`bash scripts/dev-stack.sh`: LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey
LIVEKIT_API_SECRET=secret; it exports no metrics unless AGENT_PROMETHEUS_PORT is set).

--spawn-stack runs the dev stack's processes and settings instead (livekit-server, the
inference server with the tiny models, the stub LLM, one worker with harness/stack.py's
TINY_MODELS_ENV: turns end on 0.35 s of VAD silence), on free loopback ports, with
`python -m agent start` (no file watching), the worker's metrics on, and these differences,
sized for the largest N of --users and printed when it starts:
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.inference_server import start_inference_server
from harness.join_token import make_token
from harness.livekit_server import ROOT, start_livekit_server
from harness.participant import TestParticipant
from harness.speech import speech_samples
from harness.stub_llm import StubLLM
from harness.worker import start_worker, tiny_stack_env

from .stats import (
    STAGES,
    Histogram,
    Summary,
    format_table,
    merge_histograms,
    parse_histograms,
    stage_summaries,
    summarize,
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


def utterance(text: str) -> np.ndarray:
    """A user's turn: `text` spoken by espeak-ng (cached), 0.3 s of silence before it."""
    return speech_samples(text, lead_silence_s=0.3, trail_silence_s=0.2)


@dataclass
class TurnResult:
    user: int
    turn: int
    end_to_end: float | None  # None: no answer within the timeout


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


async def spoken_turn(user: SimUser, text: str, timeout: float) -> float | None:
    """Say `text`; seconds from the end of it to the first audible answer, None without one."""
    _onset, end = await user.say_samples(utterance(text))
    answered = await user.wait_until(lambda: user.agent_audio_after(end) is not None, timeout)
    first = user.agent_audio_after(end)
    return first - end if answered and first is not None else None


async def simulate_user(
    index: int, cfg: RunConfig, run_id: str, progress: Progress, result: RunResult
) -> None:
    await asyncio.sleep(index * cfg.stagger_s)  # staggered start, not synchronisation
    user = SimUser(identity=f"user-{index}", record_samples=False)
    token = make_token(
        cfg.api_key,
        cfg.api_secret,
        room=f"loadtest-{run_id}-{index}",
        identity=user.identity,
        dispatch_agent=cfg.agent_name,
        dispatch_metadata=cfg.metadata,
        ttl_s=TOKEN_TTL_S,
    )
    dropped = False
    try:
        await user.join(cfg.url, token)
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
            latency = await spoken_turn(user, text, cfg.answer_timeout_s)
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
        utterance(text)  # generate fixtures before the clock starts
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


SLOTS = "STT and TTS slots"
MIN_SLOTS = 8  # what the e2e fixtures and the barge-in bench give the tiny inference server
WORKER_MAX_JOBS = 16  # the worker's default AGENT_MAX_JOBS


@dataclass(frozen=True)
class StackChange:
    """One way --spawn-stack's stack differs from scripts/dev-stack.sh's, and why."""

    setting: str  # SLOTS, or a worker variable
    value: str
    dev_stack: str
    why: str


def stack_changes(users: int | None, slots: int = 0) -> list[StackChange]:
    """The differences for at most `users` simultaneous users (None: the rule, for --help)."""
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
def spawn_stack(log_dir: Path, users: int, slots: int = 0) -> Iterator[Stack]:
    """The dev stack's processes on free loopback ports, sized for `users` (stack_changes),
    stopped on exit."""
    changes = stack_changes(users, slots)
    worker_env = {c.setting: c.value for c in changes if c.setting != SLOTS}
    n_slots = slots or max(MIN_SLOTS, users)
    with ExitStack() as stack:
        print(
            "starting livekit-server, inference server (tiny), stub LLM, worker: the dev "
            f"stack's settings for N={users}, except\n{describe_changes(changes)}",
            file=sys.stderr,
        )
        lk = start_livekit_server(log_dir, name="loadtest-livekit")
        stack.callback(lk.stop)
        inference = start_inference_server(
            ROOT / ".cache" / "kyutai-tiny",
            batch_size=n_slots,
            tts_batch_size=n_slots,
            log_dir=log_dir,
        )
        stack.callback(inference.stop)
        llm = stack.enter_context(StubLLM())
        env = tiny_stack_env(inference.url, inference.api_key, llm.base_url, **worker_env)
        worker = start_worker(lk, log_dir, name="loadtest-worker", env=env)
        stack.callback(worker.stop)
        metrics_url = f"http://127.0.0.1:{env['AGENT_PROMETHEUS_PORT']}/metrics"
        yield Stack(lk.url, lk.api_key, lk.api_secret, [metrics_url])


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
        help="start the dev stack's processes (see above) on free loopback ports",
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=0,
        help=f"--spawn-stack: STT and TTS slots each (0 = the largest N, at least {MIN_SLOTS})",
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
            stack = stack_ctx.enter_context(
                spawn_stack(args.log_dir, max(args.user_counts), args.slots)
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
