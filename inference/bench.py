"""Throughput and latency of the batched engines: `python -m inference.bench`.

For each batch size every slot is busy at once. STT: steps/s and real-time factor (audio seconds
per slot per wall second; > 1 is faster than real time). TTS: steps/s, real-time factor of the
produced audio, and the time from a session's words to its first audio frame under that load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

FRAME_S = 0.08
TEXT = "the quick brown fox jumps over the lazy dog and keeps on running far away"


def _sync_steps(engine: Any, max_steps: int) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    while n < max_steps:
        sessions, resets = engine._snapshot()
        if not engine.step(sessions, resets):
            break
        n += 1
    return n, time.perf_counter() - t0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bench_stt(profile: Any, bs: int, device: str, seconds: float) -> dict[str, Any]:
    import numpy as np

    from inference.metrics import Metrics
    from inference.stt_engine import SttEngine

    engine = SttEngine(profile, batch_size=bs, device=device, metrics=Metrics())
    loop = asyncio.new_event_loop()
    rng = np.random.default_rng(0)
    frames = int(seconds / FRAME_S)
    sessions = []
    for _ in range(bs):
        s = engine.acquire(loop)
        assert s is not None
        s.emit = lambda msgs: None  # type: ignore[method-assign]
        s.push_audio((0.1 * rng.standard_normal(frames * 1920)).astype(np.float32))
        sessions.append(s)
    _sync_steps(engine, 3)  # warm-up (lead frames + first steps)
    _sync(device)
    n, dt = _sync_steps(engine, frames)
    _sync(device)
    loop.close()
    sps = n / dt
    return {
        "engine": "stt",
        "batch_size": bs,
        "steps": n,
        "steps_per_s": round(sps, 2),
        "ms_per_step": round(1000 * dt / max(n, 1), 2),
        "rtf": round(sps * FRAME_S, 2),
        "streams_real_time": bs if sps * FRAME_S >= 1 else 0,
    }


def bench_tts(profile: Any, bs: int, device: str, n_q: int, max_steps: int) -> dict[str, Any]:
    from inference.metrics import Metrics
    from inference.tiny import TINY_VOICES
    from inference.tts_engine import TtsEngine

    engine = TtsEngine(
        profile,
        batch_size=bs,
        device=device,
        metrics=Metrics(),
        n_q=n_q,
        default_voice=TINY_VOICES[0],
    )
    loop = asyncio.new_event_loop()
    # Warm-up: one full utterance on every slot, so lazy initialisation is not measured.
    warm = [engine.acquire(loop) for _ in range(bs)]
    for w in warm:
        assert w is not None
        w.emit = lambda msgs: None  # type: ignore[method-assign]
        w.push_text("warm up now")
        w.push_eos()
    _sync_steps(engine, 10_000)
    for w in warm:
        assert w is not None
        engine.release(w)
    first_audio: dict[int, float] = {}
    audio_frames = [0]
    t_words = time.perf_counter()

    def make_emit(slot: int) -> Any:
        def emit(msgs: list[dict[str, Any]] | None) -> None:
            if not msgs:
                return
            for m in msgs:
                if m["type"] == "Audio":
                    audio_frames[0] += 1
                    if slot not in first_audio:
                        first_audio[slot] = time.perf_counter() - t_words

        return emit

    for i in range(bs):
        s = engine.acquire(loop)
        assert s is not None
        s.emit = make_emit(i)  # type: ignore[method-assign]
        for word in TEXT.split():
            s.push_text(word)
        s.push_eos()
    t_words = time.perf_counter()
    n, dt = _sync_steps(engine, max_steps)
    _sync(device)
    loop.close()
    sps = n / dt
    lat = list(first_audio.values())
    return {
        "engine": "tts",
        "batch_size": bs,
        "n_q": engine.n_q,
        "steps": n,
        "steps_per_s": round(sps, 2),
        "ms_per_step": round(1000 * dt / max(n, 1), 2),
        "rtf": round(sps * FRAME_S, 2),
        "first_audio_ms_mean": round(1000 * statistics.mean(lat), 1) if lat else None,
        "first_audio_ms_max": round(1000 * max(lat), 1) if lat else None,
        "frames_out": audio_frames[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.bench")
    parser.add_argument("--models", default="tiny", choices=["tiny", "full-random"])
    parser.add_argument("--batch-sizes", default="1,4,16,64")
    parser.add_argument("--engines", default="stt,tts")
    parser.add_argument("--device", default="")
    parser.add_argument("--seconds", type=float, default=8.0, help="STT audio per slot")
    parser.add_argument("--tts-max-steps", type=int, default=200)
    parser.add_argument("--tts-n-q", type=int, default=24)
    parser.add_argument("--cache-dir", default="")
    parser.add_argument("--json", dest="json_path", default="")
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not device.startswith("cuda"):
        os.environ.setdefault("NO_TORCH_COMPILE", "1")
        os.environ.setdefault("NO_CUDA_GRAPH", "1")
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    from inference.profiles import get_profile
    from inference.tiny import default_cache_dir

    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    profile = get_profile(args.models, cache)
    rows: list[dict[str, Any]] = []
    for bs in [int(x) for x in args.batch_sizes.split(",") if x.strip()]:
        for eng in args.engines.split(","):
            try:
                if eng == "stt":
                    row = bench_stt(profile, bs, device, args.seconds)
                else:
                    row = bench_tts(profile, bs, device, args.tts_n_q, args.tts_max_steps)
            except torch.OutOfMemoryError:
                row = {"engine": eng, "batch_size": bs, "error": "out of memory"}
                torch.cuda.empty_cache()
            row.update(models=args.models, device=device)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    header = (
        f"{'engine':6} {'batch':>5} {'steps/s':>9} {'ms/step':>8} {'RTF':>7} {'1st audio ms':>13}"
    )
    print(f"models={args.models} device={device} torch={torch.__version__}")
    print(header)
    for r in rows:
        if "error" in r:
            print(f"{r['engine']:6} {r['batch_size']:>5} {r['error']}")
            continue
        fa = r.get("first_audio_ms_mean")
        fa_s = "" if fa is None else f"{fa:.0f} (max {r['first_audio_ms_max']:.0f})"
        print(
            f"{r['engine']:6} {r['batch_size']:>5} {r['steps_per_s']:>9.1f} "
            f"{r['ms_per_step']:>8.2f} {r['rtf']:>7.2f} {fa_s:>13}"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
