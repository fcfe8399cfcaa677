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

Prints count, mean, p50, p90 and max side by side and their ratio; writes every sample to JSON.
The tiny models stand for the real ones in timing only as far as their compute allows (a tiny
Moshi yields within 1-2 frames, as Moshi does); see docs/moshi.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def talked_over(lk: LiveKitServer, llm: StubLLM, mode: str) -> float | None:
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
        return None if latency is None or latency < 0 else latency
    finally:
        await user.leave()


async def run(lk: LiveKitServer, llm: StubLLM, rounds: int) -> dict[str, Any]:
    samples: dict[str, dict[str, list[Any]]] = {m: {"answer": [], "talked_over": []} for m in MODES}
    for r in range(rounds):
        for mode in MODES:
            latencies = await answers(lk, llm, mode)
            samples[mode]["answer"] += latencies
            shown = ", ".join("—" if x is None else f"{x:.2f}" for x in latencies)
            print(f"round {r} {mode:7s} answers (s): {shown}")
            for _ in range(2):
                stop = await talked_over(lk, llm, mode)
                samples[mode]["talked_over"].append(stop)
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
        result = asyncio.run(run(stack.livekit, stack.llm, args.rounds))
    result["config"] = {"rounds": args.rounds, "phrases": list(PHRASES), "over": OVER}
    print_tables(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
