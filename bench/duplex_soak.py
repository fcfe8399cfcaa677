"""A duplex soak: several rooms talking to Moshi at once for minutes, on one inference server.

    uv run python -m bench.duplex_soak --rooms 4 --minutes 3 --json docs/duplex-soak.json

Starts livekit-server, the tiny inference server (STT, TTS, Moshi), the stub LLM and one worker;
`--rooms` users join rooms with the `moshi` character and talk until the time is up: a phrase,
Moshi's answer, a pause of 0.5-2 s (seeded). Beside them one msgpack client talks to `/api/chat`
directly at real time with a marker after every frame, so the engine's round trip is measured
under that load. Per minute: the answer latency at the listener (end of speech → first Moshi
audio) and the marker round trip, p50/p90, which should stay flat; over the run: the engine's
underruns, dropped frames and late ticks (from its `/metrics`), which should stay near zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness.inference_server import InferenceServer, start_inference_server
from harness.livekit_server import ROOT, LiveKitServer
from harness.speech import speech_wav
from inference.moshi_bench import marker_client, moshi_counter

from .duplex import PHRASES, first_audio_after, joined, quiet
from .local_stack import TINY_MODELS_DIR, local_stack
from .stats import format_table, summarize

COUNTERS = ("kyutai_underruns", "kyutai_dropped_frames", "kyutai_late_ticks", "kyutai_frames")


def moshi_counters(server: InferenceServer) -> dict[str, float]:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {name: moshi_counter(text, name) for name in COUNTERS}


async def talker(
    lk: LiveKitServer, index: int, deadline: float, rng: random.Random
) -> list[tuple[float, float | None]]:
    """(when, answer latency) for each phrase one user says until `deadline`."""
    user = await joined(lk, "duplex")
    out: list[tuple[float, float | None]] = []
    try:
        k = index
        while time.monotonic() < deadline:
            phrase = PHRASES[k % len(PHRASES)]
            k += 1
            _onset, end = await user.say(speech_wav(phrase, lead_silence_s=0.0))
            out.append((end, await first_audio_after(user, end)))
            await quiet(user, for_s=0.5)
            await asyncio.sleep(rng.uniform(0.5, 2.0))  # the user's own pause, not a wait
    finally:
        await user.leave()
    return out


async def run(
    lk: LiveKitServer, server: InferenceServer, rooms: int, minutes: float, seed: int
) -> dict[str, Any]:
    before = moshi_counters(server)
    start = time.monotonic()
    deadline = start + 60 * minutes
    rngs = [random.Random(seed + i) for i in range(rooms)]
    url = f"{server.url}/api/chat?format=PcmMessagePack"
    probe_start = time.perf_counter()
    probe = asyncio.create_task(marker_client(url, server.api_key, 60 * minutes, seed))
    talks = await asyncio.gather(*(talker(lk, i, deadline, rngs[i]) for i in range(rooms)))
    rtts, _frames = await probe
    after = moshi_counters(server)
    per_minute: list[dict[str, Any]] = []
    for m in range(int(minutes + 0.999)):
        lo, hi = start + 60 * m, start + 60 * (m + 1)
        answers = [lat for t in talks for at, lat in t if lo <= at < hi]
        marks = [
            rtt for sent, rtt in rtts if probe_start + 60 * m <= sent < probe_start + 60 * (m + 1)
        ]
        per_minute.append(
            {
                "minute": m + 1,
                "answer": summarize(answers),
                "answers_missing": sum(a is None for a in answers),
                "marker_round_trip": summarize(marks),
            }
        )
    return {
        "rooms": rooms,
        "minutes": minutes,
        "per_minute": per_minute,
        "answer": summarize([lat for t in talks for _, lat in t]),
        "marker_round_trip": summarize([rtt for _, rtt in rtts]),
        "engine": {name: after[name] - before[name] for name in COUNTERS},
    }


def print_result(result: dict[str, Any]) -> None:
    print("\nper minute: answer latency at the listener (s), marker round trip (s)")
    rows = []
    for row in result["per_minute"]:
        rows.append((f"minute {row['minute']} answer", row["answer"]))
        rows.append((f"minute {row['minute']} marker", row["marker_round_trip"]))
    rows += [("all answers", result["answer"]), ("all markers", result["marker_round_trip"])]
    print(format_table(rows))
    engine = result["engine"]
    print(
        f"\nengine over the run: {engine['kyutai_frames']:.0f} frames, "
        f"{engine['kyutai_underruns']:.0f} underruns, {engine['kyutai_dropped_frames']:.0f} "
        f"dropped, {engine['kyutai_late_ticks']:.0f} late ticks"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.duplex_soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--moshi-process",
        action="store_true",
        help="serve Moshi from an inference server of its own (the CPU advice of docs/moshi.md)",
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--logs", type=Path, default=ROOT / "test-artifacts" / "bench-logs")
    args = parser.parse_args()
    print(f"starting the stack; then {args.rooms} rooms + 1 marker probe for {args.minutes} min…")
    moshi_args = ["--moshi-batch-size", str(args.rooms + 1)]
    with ExitStack() as stack:
        worker = {"AGENT_NUM_IDLE_PROCESSES": str(args.rooms)}
        engines = "stt,tts,moshi"
        moshi: InferenceServer | None = None
        if args.moshi_process:
            engines = "stt,tts"
            moshi = start_inference_server(
                TINY_MODELS_DIR, extra_args=["--engines", "moshi", *moshi_args], log_dir=args.logs
            )
            stack.callback(moshi.stop)
            worker["KYUTAI_MOSHI_URL"] = moshi.url
        local = stack.enter_context(
            local_stack(
                args.logs,
                {"kyutai-duplex": worker},
                slots=args.rooms,
                prefix="soak",
                inference_args=["--engines", engines, *moshi_args],
            )
        )
        result = asyncio.run(
            run(local.livekit, moshi or local.inference, args.rooms, args.minutes, args.seed)
        )
    result["moshi_process"] = "own" if args.moshi_process else "shared with STT and TTS"
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
