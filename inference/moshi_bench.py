"""Moshi's batched step time and marker round trip: `python -m inference.moshi_bench`.

Moshi is clocked at one step per 80 ms, so what matters is the **full-batch step time** (Mimi
encode + LM step + depformer + Mimi decode for every slot): its p50 and p99 must stay well under
80 ms. Each batch size is measured twice in one run:

- **alone**: only the Moshi engine steps, driven synchronously;
- **busy**: the STT and TTS engines of the same process run on their own threads while Moshi
  steps: every STT slot fed audio at real time (users talking), every TTS slot synthesising
  one reply after another as fast as it can (as it does for a real reply), so the numbers
  include the wait for the shared model lock on a GPU and the cores the other engines take on
  a CPU.

Then the **marker round trip**: `python -m inference serve --engines moshi` runs as its own
process on a loopback port, `--rtt-sessions` msgpack clients stream audio at real time and put
a `Marker` after each frame; the time from sending a marker to reading it back (the clock's
phase wait, the step and both socket hops) is reported as p50/p90/p99.

Prints a table and writes JSON (`--json`). Memory: peak CUDA allocation on a GPU, the process's
peak RSS on a CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference import protocol

FRAME = protocol.FRAME_SIZE


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(1000 * percentile(values, 0.5), 2),
        "p99_ms": round(1000 * percentile(values, 0.99), 2),
        "max_ms": round(1000 * max(values), 2),
    }


def _memory(device: str) -> dict[str, float]:
    if device.startswith("cuda"):
        import torch

        return {"gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    return {"rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def step_times(engine: Any, steps: int, device: str, seed: int = 0) -> list[float]:
    """Every slot busy with a session that has speech-like input queued; `steps` timed ticks."""
    loop = asyncio.new_event_loop()
    rng = np.random.default_rng(seed)
    sessions = []
    for _ in range(engine.batch_size):
        s = engine.acquire(loop)
        assert s is not None
        s.emit = lambda msgs: None
        sessions.append(s)
    times: list[float] = []
    try:
        engine.tick()  # lead frames
        for _ in range(steps):
            for s in sessions:
                s.push_audio((0.05 * rng.standard_normal(FRAME)).astype(np.float32))
            _sync(device)
            t0 = time.perf_counter()
            engine.tick()
            _sync(device)
            times.append(time.perf_counter() - t0)
    finally:
        for s in sessions:
            engine.release(s)
        loop.close()
    return times


class CascadeLoad:
    """Keeps the STT and TTS engines of the process busy from a background event loop."""

    def __init__(self, engines: dict[str, Any]) -> None:
        self.engines = engines
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CascadeLoad:
        for name in ("stt", "tts"):
            self.engines[name].start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for name in ("stt", "tts"):
            self.engines[name].stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        stt, tts = self.engines["stt"], self.engines["tts"]
        tasks = [asyncio.create_task(self._stt(stt, i)) for i in range(stt.batch_size)]
        tasks += [asyncio.create_task(self._tts(tts)) for _ in range(tts.batch_size)]
        await asyncio.get_running_loop().run_in_executor(None, self._stop.wait)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stt(self, engine: Any, seed: int) -> None:
        """One STT session at real time (a user talking), for as long as the load runs."""
        rng = np.random.default_rng(seed)
        s = engine.acquire(asyncio.get_running_loop())
        if s is None:
            return
        start = time.perf_counter()
        try:
            k = 0
            while not self._stop.is_set():
                s.push_audio((0.05 * rng.standard_normal(FRAME)).astype(np.float32))
                engine.notify()
                while not s.queue.empty():
                    s.queue.get_nowait()
                k += 1
                # a load generator's own pace, not a wait on the system under test
                await asyncio.sleep(max(0.0, start + k * 0.08 - time.perf_counter()))
        finally:
            engine.release(s)

    async def _tts(self, engine: Any) -> None:
        while not self._stop.is_set():
            s = engine.acquire(asyncio.get_running_loop())
            if s is None:
                return
            try:
                for w in "the quick brown fox jumps over the lazy dog again".split():
                    s.push_text(w)
                s.push_eos()
                engine.notify()
                while not self._stop.is_set():
                    msgs = await s.queue.get()
                    if msgs is None:
                        break
            finally:
                engine.release(s)


def start_server(models: str, cache: Path, sessions: int, device: str) -> tuple[Any, int]:
    """`python -m inference serve --engines moshi` on a free loopback port, once ready."""
    import subprocess
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "inference", "serve", "--models", models, "--engines", "moshi"]
    cmd += ["--moshi-batch-size", str(sessions), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--cache-dir", str(cache), "--device", device, "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/build_info", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.2)  # readiness polling
    proc.kill()
    raise RuntimeError("the inference server did not start")


def moshi_counter(metrics: str, name: str) -> float:
    """The Moshi engine's counter `name` (e.g. kyutai_underruns) in a /metrics body; 0 if absent."""
    for line in metrics.splitlines():
        if line.startswith(f'{name}_total{{engine="moshi"}}'):
            return float(line.split()[-1])
    return 0.0


async def marker_client(
    url: str, api_key: str, seconds: float, seed: int
) -> tuple[list[tuple[float, float]], int]:
    """One msgpack client at real time sending noise and a marker after each frame: each
    marker's (send time, round trip) in `time.perf_counter` seconds, and the audio frames got."""
    import aiohttp

    rng = np.random.default_rng(seed)
    sent: dict[int, float] = {}
    rtts: list[tuple[float, float]] = []
    audio_frames = 0
    headers = {"kyutai-api-key": api_key}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        ready = protocol.unpack((await ws.receive()).data, max_bytes=1 << 20)
        assert ready["type"] == "Ready", ready

        async def reader() -> None:
            nonlocal audio_frames
            async for msg in ws:
                m = protocol.unpack(msg.data, max_bytes=1 << 24)
                if m["type"] == "Marker" and m["id"] in sent:
                    at = sent.pop(m["id"])
                    rtts.append((at, time.perf_counter() - at))
                elif m["type"] == "Audio":
                    audio_frames += 1

        task = asyncio.create_task(reader())
        start = time.perf_counter()
        for k in range(int(seconds / 0.08)):
            # Real-time pacing: the clocked engine is what is measured, not the sender.
            await asyncio.sleep(max(0.0, start + k * 0.08 - time.perf_counter()))
            pcm = (0.05 * rng.standard_normal(FRAME)).astype(np.float32)
            await ws.send_bytes(protocol.pack({"type": "Audio", "pcm": pcm.tolist()}))
            sent[k] = time.perf_counter()
            await ws.send_bytes(protocol.pack({"type": "Marker", "id": k}))
        await asyncio.sleep(0.5)  # the last markers come back within a few steps
        await ws.close()
        task.cancel()
    return rtts, audio_frames


async def marker_round_trip(
    port: int, api_key: str, sessions: int, seconds: float
) -> dict[str, Any]:
    """msgpack clients at real time against a server process, one marker after each frame."""
    import aiohttp

    url = f"ws://127.0.0.1:{port}/api/chat?format=PcmMessagePack"
    results = await asyncio.gather(
        *(marker_client(url, api_key, seconds, i) for i in range(sessions))
    )
    rtts = [rtt for pairs, _ in results for _, rtt in pairs]
    audio_frames = [sum(n for _, n in results)]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            metrics = await resp.text()

    def counter(name: str) -> int:
        return int(moshi_counter(metrics, name))

    return {
        "sessions": sessions,
        "seconds": seconds,
        "markers": len(rtts),
        "audio_frames": audio_frames[0],
        **_ms(rtts),
        "p90_ms": round(1000 * percentile(rtts, 0.9), 2),
        "underruns": counter("kyutai_underruns"),
        "dropped": counter("kyutai_dropped_frames"),
        "late_ticks": counter("kyutai_late_ticks"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.moshi_bench")
    parser.add_argument("--models", default="tiny", choices=["tiny", "full-random"])
    parser.add_argument("--batch-sizes", default="", help="default 1,4,8 on CPU, 1,8,16,32 on GPU")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement")
    parser.add_argument("--device", default="")
    parser.add_argument("--no-busy", action="store_true", help="skip the STT+TTS-busy runs")
    parser.add_argument("--rtt-sessions", type=int, default=4, help="0 skips the round trip")
    parser.add_argument("--rtt-seconds", type=float, default=10.0)
    parser.add_argument("--cache-dir", default="")
    parser.add_argument("--json", dest="json_path", default="")
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not device.startswith("cuda"):
        os.environ.setdefault("NO_TORCH_COMPILE", "1")
        os.environ.setdefault("NO_CUDA_GRAPH", "1")
    if args.models == "full-random" and not device.startswith("cuda"):
        print("full-random (7B) steps need a GPU; use --models tiny on CPU", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    from inference import server
    from inference.settings import Settings
    from inference.tiny import default_cache_dir
    from inference.warmup import warm_up

    gpu = device.startswith("cuda")
    sizes = [int(x) for x in (args.batch_sizes or ("1,8,16,32" if gpu else "1,4,8")).split(",")]
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    rows: list[dict[str, Any]] = []
    settings = Settings(models=args.models, device=device, cache_dir=cache)
    from inference.profiles import get_profile

    profile = get_profile(args.models, cache)
    for bs in sizes:
        for busy in (False,) if args.no_busy else (False, True):
            engines_wanted = "stt,tts,moshi" if busy else "moshi"
            s = settings.model_copy(update={"engines": engines_wanted, "moshi_batch_size": bs})
            server.set_torch_threads(s, device)  # as `serve` would for these engines
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            try:
                engines = server.build_engines(s, profile)
                warm_up([engines[n] for n in server.ENGINE_ORDER if n in engines])
                if busy:
                    with CascadeLoad(engines):
                        times = step_times(engines["moshi"], args.steps, device)
                else:
                    times = step_times(engines["moshi"], args.steps, device)
                row: dict[str, Any] = {
                    "batch_size": bs,
                    "with": "stt+tts busy" if busy else "alone",
                    "torch_threads": torch.get_num_threads(),
                    **_ms(times),
                    "real_time_margin": round(0.08 / percentile(times, 0.99), 2),
                    **_memory(device),
                }
                if busy:
                    row["stt_slots"] = engines["stt"].batch_size
                    row["tts_slots"] = engines["tts"].batch_size
            except torch.OutOfMemoryError:
                row = {"batch_size": bs, "with": "busy" if busy else "alone", "error": "OOM"}
            del engines
            if gpu:
                torch.cuda.empty_cache()
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    rtt: dict[str, Any] | None = None
    if args.rtt_sessions > 0:
        proc, port = start_server(args.models, cache, args.rtt_sessions, device)
        try:
            key = next(iter(settings.api_key_set))
            rtt = asyncio.run(marker_round_trip(port, key, args.rtt_sessions, args.rtt_seconds))
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"moshi step, models={args.models} device={device} torch={torch.__version__}")
    print(f"{'batch':>5} {'with':>13} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'80ms/p99':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['batch_size']:>5} {r['with']:>13} {r['error']}")
        else:
            print(
                f"{r['batch_size']:>5} {r['with']:>13} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{r['max_ms']:>8.2f} {r['real_time_margin']:>8.2f}x"
            )
    if rtt is not None:
        print(
            f"marker round trip, {rtt['sessions']} sessions x {rtt['seconds']:.0f} s at real "
            f"time: p50 {rtt['p50_ms']:.1f} ms, p90 {rtt['p90_ms']:.1f} ms, p99 "
            f"{rtt['p99_ms']:.1f} ms ({rtt['markers']} markers; underruns {rtt['underruns']}, "
            f"dropped {rtt['dropped']}, late ticks {rtt['late_ticks']})"
        )
    if args.json_path:
        out = {
            "models": args.models,
            "device": device,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "steps": args.steps,
            "rows": rows,
            "marker_round_trip": rtt,
        }
        Path(args.json_path).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
