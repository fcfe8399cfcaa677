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

from inference.warmup import warm_engine

FRAME_S = 0.08
TEXT = "the quick brown fox jumps over the lazy dog and keeps on running far away"


def _sync_steps(engine: Any, max_steps: int) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    while n < max_steps:
        if not engine.tick():
            break
        n += 1
    return n, time.perf_counter() - t0


def _emitter(session: Any) -> Any:
    """What the server does with a step's output, minus the socket: msgpack-encode every
    message and hand the batch to the session's event loop (`call_soon_threadsafe`)."""
    from inference import protocol
    from inference.engine import Session

    def emit(msgs: list[dict[str, Any]] | None) -> None:
        if msgs:
            for m in msgs:
                protocol.pack(m)
        Session.emit(session, msgs)

    return emit


def _timing(engine: Any, n: int, dt: float, model0: float) -> dict[str, Any]:
    model = engine.model_time_total - model0
    return {
        "model_ms_per_step": round(1000 * model / max(n, 1), 3),
        "overhead_ms_per_step": round(1000 * (dt - model) / max(n, 1), 3),
        "overhead_share": round((dt - model) / dt, 3) if dt > 0 else None,
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bench_stt(profile: Any, bs: int, device: str, seconds: float) -> dict[str, Any]:
    import numpy as np

    from inference.metrics import Metrics
    from inference.stt_engine import SttEngine

    engine = SttEngine(profile, batch_size=bs, device=device, metrics=Metrics())
    warm_engine(engine)
    loop = asyncio.new_event_loop()
    rng = np.random.default_rng(0)
    frames = int(seconds / FRAME_S)
    sessions = []
    for _ in range(bs):
        s = engine.acquire(loop)
        assert s is not None
        s.emit = _emitter(s)  # type: ignore[method-assign]
        s.push_audio((0.1 * rng.standard_normal(frames * 1920)).astype(np.float32))
        sessions.append(s)
    _sync_steps(engine, 1)  # the lead frame
    _sync(device)
    model0 = engine.model_time_total
    n, dt = _sync_steps(engine, frames)
    _sync(device)
    loop.close()
    sps = n / dt
    return {
        **_timing(engine, n, dt, model0),
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
    warm_engine(engine)
    loop = asyncio.new_event_loop()
    first_audio: dict[int, float] = {}
    audio_frames = [0]
    t_words = time.perf_counter()

    def make_emit(slot: int, session: Any) -> Any:
        handoff = _emitter(session)

        def emit(msgs: list[dict[str, Any]] | None) -> None:
            handoff(msgs)
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
        s.emit = make_emit(i, s)  # type: ignore[method-assign]
        for word in TEXT.split():
            s.push_text(word)
        s.push_eos()
    t_words = time.perf_counter()
    model0 = engine.model_time_total
    n, dt = _sync_steps(engine, max_steps)
    _sync(device)
    loop.close()
    sps = n / dt
    lat = list(first_audio.values())
    return {
        **_timing(engine, n, dt, model0),
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


def _drain(engine: Any) -> tuple[int, float]:
    return _sync_steps(engine, 1_000_000)


def compare_serial(
    profile: Any, kind: str, n: int, device: str, seconds: float, n_q: int
) -> dict[str, Any]:
    """Throughput of one batch of `n` sessions against the same `n` sessions served one at a
    time by a batch-1 engine (the same work: greedy models, same inputs)."""
    import numpy as np

    from inference.metrics import Metrics

    loop = asyncio.new_event_loop()
    frames_out = [0]

    def count(session: Any) -> Any:
        handoff = _emitter(session)

        def emit(msgs: list[dict[str, Any]] | None) -> None:
            handoff(msgs)
            frames_out[0] += sum(1 for m in msgs or () if m["type"] in ("Step", "Audio"))

        return emit

    if kind == "stt":
        from inference.stt_engine import SttEngine

        def make(bs: int) -> Any:
            return SttEngine(profile, batch_size=bs, device=device, metrics=Metrics())

        rng = np.random.default_rng(0)
        inputs: list[Any] = [
            (0.1 * rng.standard_normal(int(seconds / FRAME_S) * 1920)).astype(np.float32)
            for _ in range(n)
        ]

        def start(engine: Any, item: Any) -> Any:
            s = engine.acquire(loop)
            s.emit = count(s)
            s.push_audio(item)
            return s

    else:
        from inference.tiny import TINY_VOICES
        from inference.tts_engine import TtsEngine

        def make(bs: int) -> Any:
            return TtsEngine(
                profile,
                batch_size=bs,
                device=device,
                metrics=Metrics(),
                n_q=n_q,
                temp=0.0,
                default_voice=TINY_VOICES[0],
            )

        inputs = [TEXT for _ in range(n)]

        def start(engine: Any, item: Any) -> Any:
            s = engine.acquire(loop)
            s.emit = count(s)
            for word in item.split():
                s.push_text(word)
            s.push_eos()
            return s

    def run(engine: Any, groups: list[list[Any]]) -> dict[str, Any]:
        warm_engine(engine)  # as the server does before serving; not measured
        frames_out[0] = 0
        steps0, model0 = engine.steps, engine.model_time_total
        t0 = time.perf_counter()
        for group in groups:
            sessions = [start(engine, item) for item in group]
            _drain(engine)
            for s in sessions:
                engine.release(s)
        _sync(device)
        dt = time.perf_counter() - t0
        steps = engine.steps - steps0
        return {
            "seconds": round(dt, 3),
            "steps": steps,
            "frames": frames_out[0],
            "frames_per_s": round(frames_out[0] / dt, 1),
            **_timing(engine, steps, dt, model0),
        }

    batched = run(make(n), [inputs])
    serial = run(make(1), [[x] for x in inputs])
    loop.close()
    return {
        "engine": kind,
        "sessions": n,
        "batched": batched,
        "serial": serial,
        "throughput_ratio": round(batched["frames_per_s"] / serial["frames_per_s"], 2),
    }


def dry_run(profile: Any) -> list[dict[str, Any]]:
    """Build the profile's LMs on the meta device (no memory, no weights) and check them:
    parameter counts and the settings the engines rely on. Real-size configs are validated
    without running a step."""
    import torch

    from inference.profiles import checkpoint_info, load_lm

    rows: list[dict[str, Any]] = []
    for kind in ("stt", "tts"):
        info = checkpoint_info(profile, kind)
        lm = load_lm(profile, kind, info, "meta", torch.bfloat16)
        n_params = sum(p.numel() for p in lm.parameters())
        cfg = (profile.random_stt_config if kind == "stt" else profile.random_tts_config) or {}
        assert lm.n_q == cfg.get("n_q", lm.n_q) and lm.dep_q == cfg.get("dep_q", lm.dep_q)
        assert lm.text_card == cfg.get("text_card", lm.text_card)
        row: dict[str, Any] = {
            "engine": kind,
            "dry_run": True,
            "params_b": round(n_params / 1e9, 3),
            "dim": lm.dim,
            "n_q": lm.n_q,
            "dep_q": lm.dep_q,
            "text_card": lm.text_card,
            "layers": len(lm.transformer.layers),
            "device": str(next(lm.parameters()).device),
        }
        if kind == "stt":
            row["pause_heads"] = len(lm.extra_heads)
        else:
            row["cross_attention"] = any(
                getattr(layer, "cross_attention", None) is not None
                for layer in lm.transformer.layers
            )
            row["conditioners"] = sorted(lm.condition_provider.conditioners)
        rows.append(row)
    return rows


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
    parser.add_argument(
        "--compare-serial",
        type=int,
        default=16,
        metavar="N",
        help="also serve N sessions as one batch and one at a time (0 = skip)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only build the profile's LMs on the meta device and validate their configs",
    )
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
    if args.dry_run:
        checks = dry_run(profile)
        for row in checks:
            print(json.dumps(row))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(checks, indent=2))
        return 0
    if args.models == "full-random" and not device.startswith("cuda"):
        print("full-random steps need a GPU; use --dry-run on CPU", file=sys.stderr)
        return 2
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
    print(f"{'':6} {'':>5} {'model ms':>9} {'other ms':>8} {'other %':>7}")
    for r in rows:
        if "error" not in r:
            print(
                f"{r['engine']:6} {r['batch_size']:>5} {r['model_ms_per_step']:>9.2f} "
                f"{r['overhead_ms_per_step']:>8.2f} {100 * r['overhead_share']:>6.1f}%"
            )
    comparisons: list[dict[str, Any]] = []
    if args.compare_serial > 0:
        for eng in args.engines.split(","):
            cmp = compare_serial(
                profile, eng, args.compare_serial, device, args.seconds, args.tts_n_q
            )
            cmp.update(models=args.models, device=device)
            comparisons.append(cmp)
            b, s1 = cmp["batched"], cmp["serial"]
            print(
                f"{eng}: {cmp['sessions']} sessions as one batch {b['seconds']:.2f}s "
                f"({b['frames_per_s']:.0f} frames/s, {b['overhead_ms_per_step']:.2f} ms/step "
                f"outside the model) vs one at a time {s1['seconds']:.2f}s "
                f"({s1['frames_per_s']:.0f} frames/s, {s1['overhead_ms_per_step']:.2f} ms/step "
                f"outside the model): throughput x{cmp['throughput_ratio']:.2f}"
            )
    if args.json_path:
        out: dict[str, Any] = {
            "models": args.models,
            "device": device,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "rows": rows,
            "compare_serial": comparisons,
        }
        Path(args.json_path).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
