"""Barge-in latency: the user's first sound → the agent's audio stops, at the listener.

    uv run python bench/barge_in.py --rounds 5 --json docs/barge-in.json

Starts livekit-server, the tiny inference server, the stub LLM and two agent workers on free
loopback ports: one with the fast barge-in gate (`KYUTAI_FAST_BARGE_IN=true`, the default) and
one without it (Silero VAD alone). Each round, for each interruption phrase, for each worker in
turn (so both see the same load), a user joins a new room, asks a question, lets the long
answer play for 1.5 s, interrupts it and measures from the first loud sample it captured
(|x| > 300/32768) to the arrival of the agent's last audible frame (RMS >= 0.01, followed by
0.3 s of quiet). The phrases start with different sounds: a fricative ("stop"), a glide
("wait"), a breathy h ("hold on"), a nasal ("no") and a vowel ("actually"). Prints count, mean,
p50, p90 and max per worker side by side, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import summarize  # noqa: E402
from harness.inference_server import start_inference_server  # noqa: E402
from harness.livekit_server import LiveKitServer, start_livekit_server  # noqa: E402
from harness.participant import TestParticipant, make_token  # noqa: E402
from harness.speech import speech_wav  # noqa: E402
from harness.stub_llm import Reply, StubLLM  # noqa: E402
from harness.worker import start_worker, tiny_stack_env  # noqa: E402

PHRASES = (
    "Stop, stop! Let us talk about the moon instead.",
    "Wait, I have a question about that.",
    "Hold on, what about Mars?",
    "No, tell me about the stars.",
    "Actually, let us change the subject.",
)
LONG_ANSWER = (
    "Let me tell you a long story about the planets of our solar system, starting with Mercury, "
    "the smallest and closest to the sun, then Venus with its thick clouds, then our own Earth, "
    "then Mars the red planet, then the giants Jupiter and Saturn, and finally the ice giants "
    "Uranus and Neptune, far away in the cold and the dark."
)
CONDITIONS = {"fast gate": "true", "VAD only": "false"}


def stats(xs: list[float]) -> dict[str, Any]:
    return {**summarize(xs), "max": max(xs) if xs else None}


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
        await user.wait_for_greeting(agent_timeout=15)
        _onset, end = await user.say(speech_wav("Tell me about the planets please."))
        await user.wait_for(
            lambda: user.agent_audio_after(end) is not None, timeout=15, what="the answer"
        )
        started = user.agent_audio_after(end) or 0.0
        await user.wait_for(lambda: time.monotonic() - started > 1.5, timeout=5, what="1.5 s")
        onset, _ = await user.say(speech_wav(phrase, lead_silence_s=0.0))
        try:
            await user.wait_for(
                lambda: user.agent_audio_stopped_after(onset - 0.5) is not None,
                timeout=3,
                what="the agent to stop",
            )
        except TimeoutError:
            return None
        stopped = user.agent_audio_stopped_after(onset - 0.5)
        if stopped is not None and stopped < onset:
            # a gap in the agent's speech before the user began, not a reaction to it
            raise RuntimeError(f"the agent fell silent {onset - stopped:.3f} s before the onset")
        return None if stopped is None else stopped - onset
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
            "stats": stats(xs),
            "never_stopped": sum(row["latency_s"] is None for row in rows),
            "samples": rows,
        }
    return result


def agent_name(condition: str) -> str:
    return "kyutai-fast" if CONDITIONS[condition] == "true" else "kyutai-vad"


def print_table(result: dict[str, Any]) -> None:
    rows = result["conditions"]
    print(f"\n{'':14s}" + "".join(f"{c:>12s}" for c in rows))
    for key in ("count", "mean", "p50", "p90", "max"):
        cells = []
        for c in rows:
            value = rows[c]["stats"].get(key)
            cells.append(f"{value:>12.3f}" if isinstance(value, float) else f"{value!s:>12s}")
        print(f"{key:14s}" + "".join(cells))
    print(f"{'never stopped':14s}" + "".join(f"{rows[c]['never_stopped']:>12d}" for c in rows))
    fast, vad = rows["fast gate"]["stats"], rows["VAD only"]["stats"]
    if fast.get("count") and vad.get("count"):
        print(
            f"\nfast gate / VAD only: p50 {fast['p50'] / vad['p50']:.2f}x, "
            f"p90 {fast['p90'] / vad['p90']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all the phrases")
    parser.add_argument("--json", type=Path, help="write the samples and statistics here")
    parser.add_argument("--logs", type=Path, default=ROOT / "test-artifacts" / "bench-logs")
    args = parser.parse_args()
    with ExitStack() as stack:
        print("starting livekit-server, inference server (tiny), stub LLM, two workers…")
        lk = start_livekit_server(args.logs, name="bench-livekit")
        stack.callback(lk.stop)
        inference = start_inference_server(
            ROOT / ".cache" / "kyutai-tiny", batch_size=8, tts_batch_size=8, log_dir=args.logs
        )
        stack.callback(inference.stop)
        llm = stack.enter_context(StubLLM())
        for condition, fast in CONDITIONS.items():
            env = tiny_stack_env(
                inference.url,
                inference.api_key,
                llm.base_url,
                KYUTAI_FAST_BARGE_IN=fast,
                AGENT_NUM_IDLE_PROCESSES="1",
            )
            name = agent_name(condition)
            worker = start_worker(lk, args.logs, name=f"bench-{name}", agent_name=name, env=env)
            stack.callback(worker.stop)
        result = asyncio.run(run(lk, llm, args.rounds))
    result["config"] = {"rounds": args.rounds, "phrases": list(PHRASES)}
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
