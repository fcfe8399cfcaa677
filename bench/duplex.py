"""Moshi (duplex) beside the cascade, in one run: how soon the agent answers, and how soon it
falls silent when talked over, at the listener.

    uv run python -m bench.duplex --rounds 4 --json docs/duplex-latency.json

Starts livekit-server, the tiny inference server with the STT, TTS and Moshi engines, the stub
LLM and two workers with the shipped defaults: one playing the default (cascade) character,
one the `moshi` character. Each round, for each mode in turn (so both see the same load):

- **answer**: a user joins a new room, waits for the greeting, then says each phrase and
  waits for the reply: from its last loud sample (|x| > 300/32768, as the microphone sent it)
  to the first audible agent frame at the listener (RMS >= 0.01);
- **talked over**: the user asks a question and, once the answer is heard, talks over it:
  from the onset of that speech to the arrival of the agent's last audible frame (followed by
  0.3 s of quiet). The cascade stops by the fast barge-in gate; Moshi stops by itself.
  For Moshi the talk-over is split into hops from the worker's `moshi hop` log lines (one
  monotonic clock on one machine): uplink (onset at the microphone → the voice reaches the
  session), framing (→ its 80 ms frame is sent), Moshi (→ the first silent frame comes back:
  the engine's phase wait, the model's reaction, two loopback hops) and playout (→ the last
  audible frame reaches the listener: the room output's queue and the WebRTC downlink).

Prints count, mean, p50, p90 and max side by side and their ratio; writes every sample to JSON.
The tiny models stand for the real ones in timing only as far as their compute allows (a tiny
Moshi yields within 1-2 frames, as Moshi does); see docs/moshi.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from harness.join_token import make_token
from harness.livekit_server import ROOT, LiveKitServer
from harness.participant import TestParticipant
from harness.speech import speech_wav
from harness.stub_llm import LONG_ANSWER, Reply, StubLLM

from .local_stack import local_stack
from .stats import format_ratios, format_side_by_side, ratios, summarize

PHRASES = (
    "How are you today?",
    "What is your favourite season?",
    "Tell me something about the sea.",
    "Do you like music?",
    "Where would you travel next?",
)
OVER = "Wait, let me tell you something first, it is rather important."
MODES = {"cascade": ("kyutai-cascade", ""), "duplex": ("kyutai-duplex", '{"character": "moshi"}')}
HOPS = ("uplink", "framing", "moshi", "playout")
_HOP_LINE = re.compile(r"moshi hop (\w+) at ([\d.]+) step (\d+)")


def hop_times(log: str) -> list[tuple[str, float]]:
    """The `moshi hop` lines of a worker log: (name, monotonic time), in order."""
    return [(m[1], float(m[2])) for m in _HOP_LINE.finditer(log)]


def split_talk_over(
    hops: list[tuple[str, float]], onset: float, stop: float
) -> dict[str, float] | None:
    """A talk-over from the listener's onset to its stop, cut at the session's hops; None when
    the log does not hold them all."""

    def first(name: str, after: float) -> float | None:
        return next((t for n, t in hops if n == name and t >= after), None)

    heard = first("user_onset", onset - 0.05)
    sent = first("onset_sent", heard) if heard is not None else None
    quiet = first("moshi_quiet", sent) if sent is not None else None
    if heard is None or sent is None or quiet is None or quiet > stop:
        return None
    return {
        "uplink": heard - onset,
        "framing": sent - heard,
        "moshi": quiet - sent,
        "playout": stop - quiet,
    }


async def joined(lk: LiveKitServer, mode: str) -> TestParticipant:
    agent, metadata = MODES[mode]
    room = f"duplex-bench-{uuid.uuid4().hex[:8]}"
    token = make_token(
        lk.api_key,
        lk.api_secret,
        room=room,
        identity="user",
        dispatch_agent=agent,
        dispatch_metadata=metadata,
    )
    user = TestParticipant(identity="user", record_samples=False)
    await user.join(lk.url, token)
    await user.publish_microphone()
    await user.wait_for_agent(timeout=20)
    await user.wait_for(
        lambda: user.agent_audio_after(0.0) is not None, timeout=30, what="the greeting"
    )
    await quiet(user)
    return user


async def quiet(user: TestParticipant, for_s: float = 1.0, timeout: float = 30) -> None:
    """Until the agent has been inaudible for `for_s` (its greeting or answer is over)."""
    await user.wait_for(
        lambda: user.agent_quiet_since(time.monotonic() - for_s),
        timeout=timeout,
        what="the agent to finish",
    )


async def first_audio_after(user: TestParticipant, end: float) -> float | None:
    """Seconds from `end` to the first audible agent frame; None if none within 10 s."""
    try:
        await user.wait_for(
            lambda: user.agent_audio_after(end) is not None, timeout=10, what="an answer"
        )
    except TimeoutError:
        return None
    return (user.agent_audio_after(end) or end) - end


async def answers(lk: LiveKitServer, llm: StubLLM, mode: str) -> list[float | None]:
    if mode == "cascade":
        llm.reset()
        llm.push(Reply(text="Hello there."), *[Reply(text="Sure, good question.")] * len(PHRASES))
    user = await joined(lk, mode)
    out: list[float | None] = []
    try:
        for phrase in PHRASES:
            _onset, end = await user.say(speech_wav(phrase, lead_silence_s=0.0))
            out.append(await first_audio_after(user, end))
            await quiet(user)
    finally:
        await user.leave()
    return out


async def talked_over(
    lk: LiveKitServer, llm: StubLLM, mode: str, log: Path | None = None
) -> tuple[float | None, dict[str, float] | None]:
    if mode == "cascade":
        llm.reset()
        llm.push(Reply(text="Hello there."), Reply(text=LONG_ANSWER), Reply(text="Sure."))
    user = await joined(lk, mode)
    try:
        # Moshi answers 0.72 s; the cascade's long answer goes on for seconds: both are talked
        # over as soon as the answer is heard
        _onset, end = await user.say(speech_wav("Are you there?", lead_silence_s=0.0))
        await user.wait_for(
            lambda: user.agent_audio_after(end) is not None, timeout=10, what="the answer"
        )
        onset, _ = await user.say(speech_wav(OVER, lead_silence_s=0.0))
        latency = await user.agent_stop_after(onset)
        # negative: the answer was over before the user spoke, nothing was talked over
        if latency is None or latency < 0:
            return None, None
        return latency, (await _hops_of(log, onset, onset + latency) if log else None)
    finally:
        await user.leave()


async def _hops_of(log: Path, onset: float, stop: float) -> dict[str, float] | None:
    """The talk-over's hops, once the worker's log holds them (its job process forwards its
    lines to the main process, which writes them a moment later)."""
    deadline = time.monotonic() + 3.0
    while True:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        hops = split_talk_over(hop_times(text), onset, stop)
        if hops is not None or time.monotonic() > deadline:
            return hops
        await asyncio.sleep(0.1)  # a file has no event to wait on


async def run(
    lk: LiveKitServer, llm: StubLLM, rounds: int, duplex_log: Path | None = None
) -> dict[str, Any]:
    samples: dict[str, dict[str, list[Any]]] = {m: {"answer": [], "talked_over": []} for m in MODES}
    hop_samples: list[dict[str, float]] = []
    for r in range(rounds):
        for mode in MODES:
            latencies = await answers(lk, llm, mode)
            samples[mode]["answer"] += latencies
            shown = ", ".join("—" if x is None else f"{x:.2f}" for x in latencies)
            print(f"round {r} {mode:7s} answers (s): {shown}")
            for _ in range(2):
                stop, hops = await talked_over(
                    lk, llm, mode, duplex_log if mode == "duplex" else None
                )
                samples[mode]["talked_over"].append(stop)
                if hops is not None:
                    hop_samples.append(hops)
                    print("  hops: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in hops.items()))
                print(
                    f"round {r} {mode:7s} talked over: {'—' if stop is None else f'{stop:.3f} s'}"
                )
    result: dict[str, Any] = {"modes": {}}
    for mode, kinds in samples.items():
        result["modes"][mode] = {
            kind: {
                "stats": summarize(xs, with_max=True),
                "missing": sum(x is None for x in xs),
                "samples": xs,
            }
            for kind, xs in kinds.items()
        }
    result["talk_over_hops"] = {
        "stats": {h: summarize([x[h] for x in hop_samples]) for h in HOPS},
        "samples": hop_samples,
    }
    return result


def print_tables(result: dict[str, Any]) -> None:
    modes = result["modes"]
    for kind, title in (
        ("answer", "end of speech → first agent audio (s)"),
        ("talked_over", "onset over the agent → its silence (s)"),
    ):
        print(f"\n{title}")
        missing = {"missing": {m: modes[m][kind]["missing"] for m in modes}}
        print(format_side_by_side({m: modes[m][kind]["stats"] for m in modes}, counts=missing))
        duplex, cascade = modes["duplex"][kind]["stats"], modes["cascade"][kind]["stats"]
        if duplex.get("count") and cascade.get("count"):
            print(format_ratios("duplex / cascade", ratios(duplex, cascade)))
    hops = result.get("talk_over_hops", {}).get("stats", {})
    if any(st.get("count") for st in hops.values()):
        print("\nMoshi talked over, hop by hop (s)")
        print(format_side_by_side(hops))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.duplex", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=4, help="rounds over both modes")
    parser.add_argument("--json", type=Path, help="write the samples and statistics here")
    parser.add_argument("--logs", type=Path, default=ROOT / "test-artifacts" / "bench-logs")
    args = parser.parse_args()
    print("starting livekit-server, inference server (tiny: stt, tts, moshi), stub LLM, 2 workers…")
    workers = {
        MODES["cascade"][0]: {"AGENT_NUM_IDLE_PROCESSES": "1"},
        MODES["duplex"][0]: {"AGENT_NUM_IDLE_PROCESSES": "1"},
    }
    with local_stack(
        args.logs,
        workers,
        slots=4,
        prefix="duplex",
        inference_args=["--engines", "stt,tts,moshi", "--moshi-batch-size", "4"],
    ) as stack:
        duplex_log = stack.workers[MODES["duplex"][0]].handle.process.log_path
        result = asyncio.run(run(stack.livekit, stack.llm, args.rounds, duplex_log))
    result["config"] = {"rounds": args.rounds, "phrases": list(PHRASES), "over": OVER}
    print_tables(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
