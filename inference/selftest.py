"""`python -m inference selftest`: can this node serve its configured slots in real time?

It starts the engines exactly as `serve` does (compile policy, load, warm-up, engine threads,
one model lock), then, without opening a port, runs concurrent STT and TTS sessions at a few
slot counts up to the configured batch sizes, and prints per count: STT real-time factor, TTS
real-time factor and time to first audio, frames per second and GPU memory. The verdict line
says whether the configured batch sizes run in real time; the exit status is non-zero when
they do not.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from inference import protocol

FRAME_S = 0.08
TEXT = "The quick brown fox jumps over the lazy dog, then runs back home before the rain starts."
# One batch indexes every slot; beyond this no device holds the state, and a typo like
# `--slots 100000` should fail in a second, not after minutes of allocation.
MAX_SLOTS = 4096
REAL_TIME = 1.0


class SelftestError(RuntimeError):
    pass


@dataclass
class Level:
    stt_slots: int
    tts_slots: int
    stt_rtf: float | None = None
    stt_frames_per_s: float | None = None
    tts_rtf: float | None = None
    tts_first_audio_ms_p50: float | None = None
    tts_first_audio_ms_p90: float | None = None
    tts_frames_per_s: float | None = None
    gpu_mem_gib: float | None = None
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    moshi_slots: int = 0
    moshi_step_ms_p50: float | None = None
    moshi_step_ms_p99: float | None = None
    moshi_late_ticks: int | None = None
    moshi_frames_per_s: float | None = None


# A clocked Moshi step must fit its 80 ms period with room to spare.
MOSHI_STEP_BUDGET_MS = 80.0


def slot_levels(stt_n: int, tts_n: int, moshi_n: int = 0) -> list[tuple[int, int, int]]:
    """One slot each, a quarter, a half, then the full configured batch of every engine."""
    levels: list[tuple[int, int, int]] = []
    for frac in (0.0, 0.25, 0.5, 1.0):
        row = tuple(max(1, round(n * frac)) if n else 0 for n in (stt_n, tts_n, moshi_n))
        assert len(row) == 3
        if row not in levels:
            levels.append(row)
    return levels


def moshi_ok(level: Level) -> bool:
    return not level.moshi_slots or (
        level.moshi_step_ms_p99 is not None
        and level.moshi_step_ms_p99 < MOSHI_STEP_BUDGET_MS
        and not level.moshi_late_ticks
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def verdict(levels: list[Level]) -> tuple[bool, str]:
    """Pass when the last level (the configured batch sizes) ran in real time without errors."""
    if not levels:
        return False, "FAIL: nothing was measured"
    top = levels[-1]
    problems = list(top.errors)
    if top.stt_slots and (top.stt_rtf is None or top.stt_rtf < REAL_TIME):
        problems.append(f"STT runs at {_x(top.stt_rtf)} real time with {top.stt_slots} slots")
    if top.tts_slots and (top.tts_rtf is None or top.tts_rtf < REAL_TIME):
        problems.append(f"TTS runs at {_x(top.tts_rtf)} real time with {top.tts_slots} slots")
    if not moshi_ok(top):
        problems.append(
            f"Moshi steps take {_num(top.moshi_step_ms_p99)} ms (p99) with {top.moshi_slots} "
            f"slots, {top.moshi_late_ticks} late of its 80 ms clock"
        )
    if not problems:
        parts = []
        if top.stt_slots:
            parts.append(f"{top.stt_slots} STT slots at {_x(top.stt_rtf)}")
        if top.tts_slots:
            parts.append(f"{top.tts_slots} TTS slots at {_x(top.tts_rtf)}")
        if top.moshi_slots:
            parts.append(
                f"{top.moshi_slots} Moshi slots stepping in {_num(top.moshi_step_ms_p99)} ms "
                "(p99) of their 80 ms"
            )
        return True, f"OK: {' and '.join(parts)} real time, every engine busy at once"
    ok_levels = [
        lv
        for lv in levels
        if not lv.errors
        and (not lv.stt_slots or (lv.stt_rtf or 0) >= REAL_TIME)
        and (not lv.tts_slots or (lv.tts_rtf or 0) >= REAL_TIME)
        and moshi_ok(lv)
    ]
    advice = "no slot count ran in real time on this device"
    if ok_levels:
        best = ok_levels[-1]
        counts = [f"{best.stt_slots} STT", f"{best.tts_slots} TTS"]
        knobs = "KYUTAI_STT_BATCH_SIZE / KYUTAI_TTS_BATCH_SIZE"
        if best.moshi_slots:
            counts.append(f"{best.moshi_slots} Moshi")
            knobs += " / KYUTAI_MOSHI_BATCH_SIZE"
        advice = (
            f"the largest count that ran in real time was {' + '.join(counts)} slots: set "
            f"{knobs} at or below it"
        )
    if not moshi_ok(top) and (top.stt_slots or top.tts_slots):
        advice += " (or give Moshi a process of its own: `--engines moshi`)"
    return False, f"FAIL: {'; '.join(problems)}; {advice}"


def _x(rtf: float | None) -> str:
    return "n/a" if rtf is None else f"x{rtf:.2f}"


async def _stt_session(engine: Any, seconds: float, seed: int) -> tuple[float, int, str | None]:
    """Stream `seconds` of audio as fast as the engine takes it, flush, wait for the marker.
    Returns (wall seconds, frames stepped, error)."""
    loop = asyncio.get_running_loop()
    session = engine.acquire(loop)
    if session is None:
        return 0.0, 0, "STT: no free slot"
    rng = np.random.default_rng(seed)
    n = int(seconds * protocol.SAMPLE_RATE)
    t0 = time.perf_counter()
    try:
        session.push_audio((0.05 * rng.standard_normal(n)).astype(np.float32))
        session.push_marker(1)
        flush = (engine.delay_steps + 1) * protocol.FRAME_SIZE
        session.push_audio(np.zeros(flush, dtype=np.float32))
        engine.notify()
        while True:
            msgs = await session.queue.get()
            if msgs is None:
                return time.perf_counter() - t0, session.frames_done, "STT session closed"
            for m in msgs:
                if m["type"] == "Error":
                    return time.perf_counter() - t0, session.frames_done, m["message"]
                if m["type"] == "Marker":
                    return time.perf_counter() - t0, session.frames_done, None
    finally:
        engine.release(session)


@dataclass
class _TtsRun:
    first_audio_s: float | None = None
    last_audio_s: float | None = None
    frames: int = 0
    error: str | None = None


async def _tts_session(engine: Any, text: str) -> _TtsRun:
    loop = asyncio.get_running_loop()
    run = _TtsRun()
    session = engine.acquire(loop)
    if session is None:
        run.error = "TTS: no free slot"
        return run
    t0 = time.perf_counter()
    try:
        for word in text.split():
            session.push_text(word)
        session.push_eos()
        engine.notify()
        while True:
            msgs = await session.queue.get()
            if msgs is None:
                return run
            now = time.perf_counter() - t0
            for m in msgs:
                if m["type"] == "Error":
                    run.error = m["message"]
                    return run
                if m["type"] == "Audio":
                    run.frames += 1
                    run.last_audio_s = now
                    if run.first_audio_s is None:
                        run.first_audio_s = now
    finally:
        engine.release(session)


async def _moshi_session(engine: Any, done: asyncio.Event, seed: int) -> tuple[int, str | None]:
    """Speech-like input at real time until `done`; returns (audio frames received, error)."""
    loop = asyncio.get_running_loop()
    session = engine.acquire(loop)
    if session is None:
        return 0, "Moshi: no free slot"
    rng = np.random.default_rng(seed)
    frames = 0

    async def read() -> None:
        nonlocal frames
        while True:
            msgs = await session.queue.get()
            if msgs is None:
                return
            frames += sum(1 for m in msgs if m["type"] == "Audio")

    reader = asyncio.create_task(read())
    start = time.perf_counter()
    try:
        k = 0
        while not done.is_set():
            session.push_audio((0.05 * rng.standard_normal(protocol.FRAME_SIZE)).astype("f4"))
            k += 1
            try:  # the client's own 80 ms pace, ended early by `done`
                await asyncio.wait_for(
                    done.wait(), max(0.0, start + k * FRAME_S - time.perf_counter())
                )
            except TimeoutError:
                pass
        return frames, None
    finally:
        engine.release(session)
        reader.cancel()


async def first_audio_ms(engine: Any) -> float | None:
    run = await _tts_session(engine, "Hello there.")
    return None if run.first_audio_s is None else round(1000 * run.first_audio_s, 1)


async def run_level(
    engines: dict[str, Any], stt_k: int, tts_k: int, seconds: float, moshi_k: int = 0
) -> Level:
    import torch

    level = Level(stt_k, tts_k, moshi_slots=moshi_k)
    cuda = torch.cuda.is_available() and any(
        str(getattr(engines.get(n), "device", "")).startswith("cuda")
        for n in ("stt", "tts", "moshi")
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stt, tts, moshi = engines.get("stt"), engines.get("tts"), engines.get("moshi")
    t0 = time.perf_counter()
    done = asyncio.Event()
    moshi_tasks = [
        asyncio.create_task(_moshi_session(moshi, done, i)) for i in range(moshi_k if moshi else 0)
    ]
    if moshi is not None:
        moshi.recent_steps.clear()
        late0 = moshi.late_ticks
    stt_tasks = [_stt_session(stt, seconds, i) for i in range(stt_k)] if stt else []
    tts_tasks = [_tts_session(tts, TEXT) for _ in range(tts_k)] if tts else []
    try:
        if stt_tasks or tts_tasks:
            stt_res, tts_res = await asyncio.gather(
                asyncio.gather(*stt_tasks), asyncio.gather(*tts_tasks)
            )
        else:  # Moshi alone: as long as an STT session would have lasted
            stt_res, tts_res = [], []
            await asyncio.sleep(seconds)
    finally:
        done.set()
    moshi_res = await asyncio.gather(*moshi_tasks)
    level.seconds = round(time.perf_counter() - t0, 3)
    if moshi is not None and moshi_k:
        steps = list(moshi.recent_steps)
        level.errors += [f"Moshi: {e}" for _, e in moshi_res if e]
        level.moshi_late_ticks = moshi.late_ticks - late0
        if steps:
            level.moshi_step_ms_p50 = round(1000 * statistics.median(steps), 2)
            level.moshi_step_ms_p99 = round(1000 * percentile(steps, 0.99), 2)
        level.moshi_frames_per_s = round(sum(f for f, _ in moshi_res) / level.seconds, 1)
    if stt_res:
        level.errors += [f"STT: {e}" for _, _, e in stt_res if e]
        slowest = max(dt for dt, _, _ in stt_res)
        frames = sum(f for _, f, _ in stt_res)
        audio_s = min(f for _, f, _ in stt_res) * FRAME_S
        level.stt_rtf = round(audio_s / slowest, 2) if slowest > 0 else None
        level.stt_frames_per_s = round(frames / slowest, 1) if slowest > 0 else None
    if tts_res:
        level.errors += [f"TTS: {r.error}" for r in tts_res if r.error]
        firsts = [r.first_audio_s for r in tts_res if r.first_audio_s is not None]
        if firsts:
            level.tts_first_audio_ms_p50 = round(1000 * statistics.median(firsts), 1)
            level.tts_first_audio_ms_p90 = round(1000 * percentile(firsts, 0.9), 1)
        # Real time once speaking: audio produced against the time it took to produce it
        # (after the first frame, which the first-audio latency already covers).
        rtfs = [
            (r.frames - 1) * FRAME_S / (r.last_audio_s - r.first_audio_s)
            for r in tts_res
            if r.first_audio_s is not None
            and r.last_audio_s is not None
            and r.last_audio_s > r.first_audio_s
        ]
        level.tts_rtf = round(min(rtfs), 2) if rtfs else None
        level.tts_frames_per_s = round(sum(r.frames for r in tts_res) / level.seconds, 1)
        if len(firsts) < len(tts_res):
            level.errors.append("TTS: a session produced no audio")
    if cuda:
        level.gpu_mem_gib = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return level


def format_table(levels: list[Level]) -> str:
    head = (
        f"{'STT slots':>9} {'STT RTF':>8} {'STT fr/s':>9} {'TTS slots':>9} {'TTS RTF':>8} "
        f"{'TTS 1st audio p50/p90 ms':>25} {'TTS fr/s':>9} {'GPU GiB':>8}"
    )
    if any(lv.moshi_slots for lv in levels):
        head += f" {'Moshi slots':>11} {'step p50/p99 ms':>16} {'late':>5}"
    rows = [head]
    for lv in levels:
        fa = (
            "-"
            if lv.tts_first_audio_ms_p50 is None
            else f"{lv.tts_first_audio_ms_p50:.0f} / {lv.tts_first_audio_ms_p90:.0f}"
        )
        rows.append(
            f"{lv.stt_slots:>9} {_num(lv.stt_rtf):>8} {_num(lv.stt_frames_per_s):>9} "
            f"{lv.tts_slots:>9} {_num(lv.tts_rtf):>8} {fa:>25} {_num(lv.tts_frames_per_s):>9} "
            f"{_num(lv.gpu_mem_gib):>8}"
        )
        if lv.moshi_slots:
            step = f"{_num(lv.moshi_step_ms_p50)} / {_num(lv.moshi_step_ms_p99)}"
            rows[-1] += f" {lv.moshi_slots:>11} {step:>16} {_num(lv.moshi_late_ticks):>5}"
        rows += [f"{'':>9} error: {e}" for e in lv.errors[:3]]
    return "\n".join(rows)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


async def run(
    settings: Any, *, slots: int | None, seconds: float, warmup: bool = True
) -> dict[str, Any]:
    """Start the engines like `serve`, measure, stop them; returns the report."""
    import torch

    from inference import server
    from inference.profiles import WeightsUnavailable, get_profile
    from inference.warmup import warm_up

    if slots is not None:
        if slots < 1 or slots > MAX_SLOTS:
            raise SelftestError(
                f"--slots {slots} is impossible: a batch holds 1 to {MAX_SLOTS} slots"
            )
        settings = settings.model_copy(
            update={"stt_batch_size": slots, "tts_batch_size": slots, "moshi_batch_size": slots}
        )
    policy = server.configure_device(settings)
    profile = get_profile(settings.models, settings.cache_dir, moshi_repo=settings.moshi_repo)
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    try:
        try:
            engines = await loop.run_in_executor(None, server.build_engines, settings, profile)
        except WeightsUnavailable as exc:
            if not policy.device.startswith("cuda"):
                hint = "on CPU, `--models tiny` is the profile to test"
                raise SelftestError(f"{exc} ({hint})") from exc
            print(
                f"selftest: {settings.models} weights unavailable; measuring full-random "
                "(real sizes, random weights) instead",
                file=sys.stderr,
            )
            settings = settings.model_copy(update={"models": "full-random"})
            profile = get_profile(settings.models, settings.cache_dir)
            engines = await loop.run_in_executor(None, server.build_engines, settings, profile)
    except torch.OutOfMemoryError as exc:
        raise SelftestError(
            f"out of memory loading {settings.models} at these slot counts"
        ) from exc
    load_s = time.perf_counter() - t0
    warm: dict[str, float] = {}
    if warmup:
        results = await loop.run_in_executor(
            None, warm_up, [engines[n] for n in server.ENGINE_ORDER if n in engines]
        )
        warm = {r.engine: round(r.seconds, 3) for r in results}
    server.start_threads(engines)
    try:
        first = second = None
        if "tts" in engines:
            first = await first_audio_ms(engines["tts"])
            second = await first_audio_ms(engines["tts"])
        stt_n = engines["stt"].batch_size if "stt" in engines else 0
        tts_n = engines["tts"].batch_size if "tts" in engines else 0
        moshi_n = engines["moshi"].batch_size if "moshi" in engines else 0
        levels: list[Level] = []
        for stt_k, tts_k, moshi_k in slot_levels(stt_n, tts_n, moshi_n):
            try:
                level = await run_level(engines, stt_k, tts_k, seconds, moshi_k)
            except torch.OutOfMemoryError:
                level = Level(stt_k, tts_k, errors=["out of memory"], moshi_slots=moshi_k)
            levels.append(level)
            print(
                f"selftest: {stt_k} STT + {tts_k} TTS + {moshi_k} Moshi slots done",
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.stop_threads(engines)
    ok, line = verdict(levels)
    return {
        "profile": settings.models,
        "device": policy.device,
        "torch": torch.__version__,
        "torch_compile": policy.compile,
        "cuda_graphs": policy.cuda_graphs,
        "gpu": torch.cuda.get_device_name() if policy.device.startswith("cuda") else None,
        "load_s": round(load_s, 2),
        "warmup_s": warm,
        "tts_first_session_first_audio_ms": first,
        "tts_second_session_first_audio_ms": second,
        "stt_seconds_per_session": seconds,
        "levels": [asdict(lv) for lv in levels],
        "ok": ok,
        "verdict": line,
    }


def report_text(report: dict[str, Any]) -> str:
    levels = [Level(**lv) for lv in report["levels"]]
    warm = ", ".join(f"{k} {v:.2f} s" for k, v in report["warmup_s"].items()) or "skipped"
    lines = [
        f"selftest: profile {report['profile']} on {report['gpu'] or report['device']} "
        f"(torch {report['torch']}, torch.compile {'on' if report['torch_compile'] else 'off'}, "
        f"CUDA graphs {'on' if report['cuda_graphs'] else 'off'})",
        f"loaded in {report['load_s']:.1f} s; warm-up: {warm}",
    ]
    if report["tts_first_session_first_audio_ms"] is not None:
        lines.append(
            f"TTS time to first audio: first session {report['tts_first_session_first_audio_ms']}"
            f" ms, second session {report['tts_second_session_first_audio_ms']} ms"
        )
    lines += [
        format_table(levels),
        f"verdict: {report['verdict']}",
    ]
    return "\n".join(lines)


def main(
    settings: Any, *, slots: int | None, seconds: float, as_json: bool, out: str, warmup: bool
) -> int:
    try:
        report = asyncio.run(run(settings, slots=slots, seconds=seconds, warmup=warmup))
    except SelftestError as exc:
        print(f"selftest: error: {exc}", file=sys.stderr)
        return 2
    text = report_text(report)
    if as_json:
        print(text, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(text)
    if out:
        from pathlib import Path

        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1
