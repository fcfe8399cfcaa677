"""Barge-in latency: the user's first sound → the agent's audio stops, at the listener.

    uv run python -m bench.barge_in --rounds 5 --json docs/barge-in.json

Starts livekit-server, the tiny inference server, the stub LLM and two agent workers on free
loopback ports, with the shipped worker defaults, as the dev stack runs them: one
worker with the fast barge-in gate (`KYUTAI_FAST_BARGE_IN=true`, the default) and one without
it (Silero VAD alone). Each round, for each interruption phrase, for each worker in turn (so
both see the same load), a user joins a new room, asks a question, lets the long answer play
for 1.5 s (`TestParticipant.start_long_answer`), interrupts it and measures from the first loud
sample it captured (|x| > 300/32768) to the arrival of the agent's last audible frame
(RMS >= 0.01, followed by 0.3 s of quiet). The phrases start with different sounds: a
fricative ("stop"), a glide ("wait"), a breathy h ("hold on"), a nasal ("no") and a vowel
("actually"). Prints count, mean, p50, p90 and max per worker side by side, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    "Stop, stop! Let us talk about the moon instead.",
    "Wait, I have a question about that.",
    "Hold on, what about Mars?",
    "No, tell me about the stars.",
    "Actually, let us change the subject.",
)
CONDITIONS = {"fast gate": "true", "VAD only": "false"}


async def one_barge_in(
    lk: LiveKitServer, llm: StubLLM, agent_name: str, phrase: str
) -> float | None:
    """Seconds from the user's onset to silence at the listener; None if it never stopped."""
    llm.reset()
    llm.push(Reply(text="Hello there."), Reply(text=LONG_ANSWER), Reply(text="Sure."))
    room = f"barge-{uuid.uuid4().hex[:8]}"
    token = make_token(
        lk.api_key, lk.api_secret, room=room, identity="user", dispatch_agent=agent_name
    )
    user = TestParticipant(identity="user")
    await user.join(lk.url, token)
    try:
        await user.start_long_answer(into_s=1.5, agent_timeout=15, answer_timeout=15)
        onset, _ = await user.say(speech_wav(phrase, lead_silence_s=0.0))
        latency = await user.agent_stop_after(onset, timeout=3)
        if latency is not None and latency < 0:
            # a gap in the agent's speech before the user began, not a reaction to it
            raise RuntimeError(f"the agent fell silent {-latency:.3f} s before the onset")
        return latency
    finally:
        await user.leave()


async def run(lk: LiveKitServer, llm: StubLLM, rounds: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {c: [] for c in CONDITIONS}
    total = rounds * len(PHRASES) * len(CONDITIONS)
    done = 0
    for r in range(rounds):
        for phrase in PHRASES:
            for condition in CONDITIONS:
                latency = await one_barge_in(lk, llm, agent_name(condition), phrase)
                samples[condition].append({"round": r, "phrase": phrase, "latency_s": latency})
                done += 1
                shown = "never stopped" if latency is None else f"{latency:.3f} s"
                print(f"[{done}/{total}] {condition:9s} {phrase.split(',')[0]!r:16s} {shown}")
    result: dict[str, Any] = {"conditions": {}}
    for condition, rows in samples.items():
        xs = [row["latency_s"] for row in rows if row["latency_s"] is not None]
        result["conditions"][condition] = {
            "stats": summarize(xs, with_max=True),
            "never_stopped": sum(row["latency_s"] is None for row in rows),
            "samples": rows,
        }
    return result


def agent_name(condition: str) -> str:
    return "kyutai-fast" if CONDITIONS[condition] == "true" else "kyutai-vad"


def print_table(result: dict[str, Any]) -> None:
    rows = result["conditions"]
    never = {"never stopped": {c: rows[c]["never_stopped"] for c in rows}}
    print("\n" + format_side_by_side({c: rows[c]["stats"] for c in rows}, counts=never))
    fast, vad = rows["fast gate"]["stats"], rows["VAD only"]["stats"]
    if fast.get("count") and vad.get("count"):
        print("\n" + format_ratios("fast gate / VAD only", ratios(fast, vad)))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.barge_in", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all the phrases")
    parser.add_argument("--json", type=Path, help="write the samples and statistics here")
    parser.add_argument("--logs", type=Path, default=ROOT / "test-artifacts" / "bench-logs")
    args = parser.parse_args()
    print("starting livekit-server, inference server (tiny), stub LLM, two workers…")
    workers = {
        agent_name(condition): {"KYUTAI_FAST_BARGE_IN": fast, "AGENT_NUM_IDLE_PROCESSES": "1"}
        for condition, fast in CONDITIONS.items()
    }
    with local_stack(args.logs, workers, slots=8, prefix="bench") as stack:
        result = asyncio.run(run(stack.livekit, stack.llm, args.rounds))
    result["config"] = {"rounds": args.rounds, "phrases": list(PHRASES)}
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
