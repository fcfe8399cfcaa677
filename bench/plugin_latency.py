"""Latency of kyutai.STT and kyutai.TTS through the plugins against a Kyutai server.

    uv run python -m bench.plugin_latency --turns 10 [--url ws://host:8089] [--out x.json]

Without --url a local inference server with the tiny models is started (numbers then measure the
plugin and protocol overhead, not real models). Per turn:
- STT: a spoken fixture is fed in real time; end of audible speech → the FINAL_TRANSCRIPT (the
  pause heads ended the turn and the flush marker came back) and → END_OF_SPEECH, which the
  plugin sends right after the final (LiveKit commits the turn on it).
- TTS: first text pushed → first audio frame (TTFB), with the pre-connected socket.
Prints count, mean, p50, p90, p99 and max (bench.stats.summarize) and writes the raw samples
as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, stt
from livekit.plugins import kyutai

from harness.inference_server import start_inference_server
from harness.speech import SAMPLE_RATE, speech_samples

from .stats import Summary, summarize

ROOT = Path(__file__).resolve().parents[1]
SR = SAMPLE_RATE
OPTS = APIConnectOptions(max_retry=0, timeout=10.0)


async def stt_turn(model: kyutai.STT, pcm: np.ndarray) -> tuple[float, float] | None:
    """(end of speech → END_OF_SPEECH, end of speech → FINAL) in seconds, or None; the end of
    speech follows the final, so the two differ by the event hand-off only."""
    loud = np.flatnonzero(np.abs(pcm) > 300)
    last_loud = int(loud[-1]) if loud.size else 0
    step = SR // 50
    stream = model.stream(conn_options=OPTS)
    speech_end: float | None = None
    got: dict[str, float] = {}

    async def feed() -> None:
        nonlocal speech_end
        t0 = time.perf_counter()
        for n, i in enumerate(range(0, pcm.size - step + 1, step)):
            delay = t0 + n * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # a real-time source
            stream.push_frame(rtc.AudioFrame(pcm[i : i + step].tobytes(), SR, 1, step))
            if speech_end is None and i + step > last_loud:
                speech_end = time.perf_counter()
        stream.end_input()

    async def read() -> None:
        async for ev in stream:
            if ev.type == stt.SpeechEventType.END_OF_SPEECH and "end" not in got:
                got["end"] = time.perf_counter()
            elif ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT and "final" not in got:
                got["final"] = time.perf_counter()

    await asyncio.gather(feed(), read())
    await stream.aclose()
    if speech_end is None or "final" not in got:
        return None
    return got.get("end", got["final"]) - speech_end, got["final"] - speech_end


async def tts_turn(model: kyutai.TTS, text: str) -> float:
    stream = model.stream(conn_options=OPTS)
    t0 = time.perf_counter()
    stream.push_text(text)
    stream.end_input()
    first: float | None = None
    async for _ in stream:
        if first is None:
            first = time.perf_counter() - t0
    await stream.aclose()
    assert first is not None
    return first


async def run(url: str, turns: int) -> dict[str, Any]:
    samples = speech_samples("Can you tell me what time it is?", trail_silence_s=2.5)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    stt_model = kyutai.STT(url=url)
    tts_model = kyutai.TTS(url=url)
    tts_model.prewarm()
    eos: list[float] = []
    final: list[float] = []
    ttfb: list[float] = []
    for i in range(turns):
        res = await stt_turn(stt_model, pcm)
        if res is not None:
            eos.append(res[0])
            final.append(res[1])
        ttfb.append(await tts_turn(tts_model, f"Sure, here is answer number {i + 1}."))
    await stt_model.aclose()
    await tts_model.aclose()
    return {
        "url": url,
        "turns": turns,
        "stt_end_of_speech_s": summarize(eos, with_max=True),
        "stt_final_transcript_s": summarize(final, with_max=True),
        "tts_first_audio_s": summarize(ttfb, with_max=True),
        "raw": {"eos": eos, "final": final, "ttfb": ttfb},
    }


def format_line(key: str, stats: Summary) -> str:
    cells = "  ".join(f"{k}={v:.3f}" for k, v in stats.items() if k != "count" and v is not None)
    return f"{key:24s} n={stats['count']}  {cells}"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.plugin_latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--url", default=None, help="Kyutai server (default: start a tiny one)")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "plugin_latency.json")
    args = parser.parse_args()

    server = None
    url = args.url
    if url is None:
        server = start_inference_server(Path(tempfile.mkdtemp(prefix="kyutai-bench-")))
        url = server.url
    try:
        result = asyncio.run(run(url, args.turns))
    finally:
        if server is not None:
            server.stop()
    for key in ("stt_end_of_speech_s", "stt_final_transcript_s", "tts_first_audio_s"):
        print(format_line(key, result[key]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
