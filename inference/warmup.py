"""Warm-up before serving: every compiled or graphed path runs once the way serving runs it.

moshi compiles (`torch.compile`) on a function's first call and captures a CUDA graph on a
graphed callable's second call. Left to the first conversation, that costs seconds of silence
before its greeting, and a capture could overlap the other engine's step (see
`inference/device.py`). So before the engine threads start, each engine in turn serves a
short synthetic conversation on every slot and then on one slot, through its own `tick()`:
STT steps (Mimi encode, LM step with pause heads), TTS steps (voice conditioning, LM step
with the depformer, Mimi decode) and Moshi steps (lead step, encode, LM and depformer, decode),
each with full and partial exec masks and slot resets. One engine at a time, on the calling
thread, under the model lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference import protocol
from inference.engine import SlotEngine
from inference.metrics import Metrics

log = logging.getLogger(__name__)

# A full utterance needs the TTS delay (~1.3 s of steps) before its first decode.
MAX_WARMUP_STEPS = 2000
STT_SECONDS = 0.64  # 8 frames after the lead frames: > 3 calls of every graphed callable
TTS_TEXT = "Warming up."


class WarmupError(RuntimeError):
    pass


@dataclass(frozen=True)
class WarmupResult:
    engine: str
    seconds: float
    steps: int
    messages: dict[str, int]


def _feed_stt(session: Any, slot: int) -> None:
    rng = np.random.default_rng(slot)
    n = int(STT_SECONDS * protocol.SAMPLE_RATE)
    session.push_audio((0.05 * rng.standard_normal(n)).astype(np.float32))
    # Flush like a client does: the marker comes back once the model delay has passed.
    session.push_marker(slot)
    flush = np.zeros((session.delay_steps + 1) * protocol.FRAME_SIZE, dtype=np.float32)
    session.push_audio(flush)


def _feed_tts(session: Any, slot: int) -> None:
    for word in TTS_TEXT.split():
        session.push_text(word)
    session.push_eos()


# Moshi is clocked: its slots step as long as they are open, so its warm-up is a step count
# (lead frame + enough frames for every graphed callable's capture, with full and partial
# masks) rather than "until the work runs out".
MOSHI_STEPS = 6


def _feed_moshi(session: Any, slot: int) -> None:
    rng = np.random.default_rng(slot)
    n = (MOSHI_STEPS - 2) * protocol.FRAME_SIZE
    session.push_audio((0.05 * rng.standard_normal(n)).astype(np.float32))
    session.push_marker(slot)


FEEDERS: dict[str, Callable[[Any, int], None]] = {
    "stt": _feed_stt,
    "tts": _feed_tts,
    "moshi": _feed_moshi,
}
STEP_LIMIT = {"moshi": MOSHI_STEPS}


def warm_engine(engine: SlotEngine[Any]) -> WarmupResult:
    """Serve one synthetic conversation on every slot, then one on a single slot."""
    if engine._thread is not None:
        raise WarmupError(f"{engine.name}: warm up before the engine thread starts")
    feed = FEEDERS[engine.name]
    counts: dict[str, int] = {}

    def collect(msgs: list[dict[str, Any]] | None) -> None:
        for m in msgs or ():
            counts[m["type"]] = counts.get(m["type"], 0) + 1

    real_metrics = engine.metrics
    engine.metrics = Metrics()  # warm-up sessions are not traffic
    loop = asyncio.new_event_loop()
    t0 = time.perf_counter()
    steps = 0
    try:
        for n_slots in (engine.batch_size, 1):
            sessions = []
            for slot in range(n_slots):
                s = engine.acquire(loop)
                if s is None:
                    raise WarmupError(f"{engine.name}: no free slot during warm-up")
                s.emit = collect
                feed(s, slot)
                sessions.append(s)
            limit = steps + STEP_LIMIT.get(engine.name, MAX_WARMUP_STEPS)
            while steps < limit and engine.tick():
                steps += 1
            for s in sessions:
                engine.release(s)
    finally:
        loop.close()
        engine.metrics = real_metrics
        engine._update_gauges()
        reset_counters = getattr(engine, "reset_counters", None)
        if reset_counters is not None:
            reset_counters()
    if counts.get("Error"):
        raise WarmupError(f"{engine.name}: the warm-up conversation failed ({counts})")
    expected = "Marker" if engine.name == "stt" else "Audio"
    if not counts.get(expected):
        raise WarmupError(f"{engine.name}: the warm-up produced no {expected} ({counts})")
    seconds = time.perf_counter() - t0
    engine.steps = 0
    engine.step_time_total = 0.0
    engine.model_time_total = 0.0
    return WarmupResult(engine.name, seconds, steps, counts)


def warm_up(engines: Sequence[SlotEngine[Any]]) -> list[WarmupResult]:
    """Warm each engine in turn (never two at once), before any thread starts."""
    results = []
    for engine in engines:
        result = warm_engine(engine)
        log.info(
            "%s warm-up: %d steps in %.2fs (%s)",
            result.engine,
            result.steps,
            result.seconds,
            ", ".join(f"{k} {v}" for k, v in sorted(result.messages.items())),
        )
        results.append(result)
    return results
