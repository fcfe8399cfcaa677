"""The warm-up reaches every graphed and compiled callable before the engine threads start.

moshi captures a CUDA graph on a `CUDAGraphed` callable's second call and compiles its
`torch_compile_lazy` functions per input signature on first use. On CPU neither happens, but
the calls do: counting them per callable and per signature shows that everything a real
conversation touches was already called (twice for graphs, with the same signature for
compiled kernels) when the threads start, so on a GPU nothing is captured or compiled while
serving and no capture can overlap another engine's step.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference import device as device_policy
from inference import server
from inference.engine import SlotEngine
from inference.settings import Settings
from inference.voices import load_voice_file
from inference.warmup import WarmupError, warm_engine

COMPILED = {
    "moshi.modules.transformer": "_rms_norm",
    "moshi.modules.rope": "apply_rope",
    "moshi.modules.gating": "gating_forward_kernel",
}


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # What torch.compile guards on: tensor shapes/dtypes/devices and Python constants.
    return tuple(
        (tuple(a.shape), a.dtype, a.device.type) if isinstance(a, torch.Tensor) else repr(a)
        for a in args
    )


class Calls:
    def __init__(self) -> None:
        self.graphed: Counter[int] = Counter()
        self.graphed_owner: dict[int, str] = {}
        self.compiled: set[tuple[str, tuple[Any, ...]]] = set()

    def snapshot(self) -> tuple[Counter[int], set[tuple[str, tuple[Any, ...]]]]:
        return Counter(self.graphed), set(self.compiled)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    import moshi.modules.gating
    import moshi.modules.rope
    import moshi.modules.transformer  # noqa: F401
    from moshi.utils.compile import CUDAGraphed

    rec = Calls()
    original_call = CUDAGraphed.__call__

    def counted_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        rec.graphed[id(self)] += 1
        func = self.func
        if isinstance(func, torch.nn.Module):
            owner = type(func).__name__
        else:
            owner = getattr(func, "__qualname__", type(func).__name__)
        rec.graphed_owner[id(self)] = owner
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(CUDAGraphed, "__call__", counted_call)
    for module_name, fn_name in COMPILED.items():
        fn = getattr(sys.modules[module_name], fn_name)

        def wrap(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
            def counted(*args: Any, **kwargs: Any) -> Any:
                rec.compiled.add((name, _signature(args)))
                return fn(*args, **kwargs)

            return counted

        wrapped = wrap(fn, fn_name)
        # Every moshi module that imported the function by name calls it through its globals.
        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith("moshi") and getattr(mod, fn_name, None) is fn:
                monkeypatch.setattr(mod, fn_name, wrapped)
    yield rec


def _settings(tiny_cache: Path) -> Settings:
    return Settings(
        models="tiny", cache_dir=tiny_cache, device="cpu", stt_batch_size=3, tts_batch_size=2
    )


def _run(engine: SlotEngine[Any]) -> None:
    while engine.tick():
        pass


def _serve_conversations(engines: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    """What serving does after start-up: sessions come and go on some slots, with and without
    an inline voice, partial exec masks, resets of used slots."""
    stt, tts = engines["stt"], engines["tts"]
    rng = np.random.default_rng(1)
    a = stt.acquire(loop)
    a.push_audio((0.2 * rng.standard_normal(1920 * 10)).astype(np.float32))
    a.push_marker(7)
    a.push_audio(np.zeros(1920 * (stt.delay_steps + 1), dtype=np.float32))
    _run(stt)
    b = stt.acquire(loop)
    b.push_audio((0.2 * rng.standard_normal(1920 * 4)).astype(np.float32))
    _run(stt)
    stt.release(a)
    stt.release(b)

    voice = load_voice_file(tts.voice_path(tts.default_voice_name))
    first = tts.acquire(loop)
    first.push_voice(tts.check_voice(voice))
    for w in "hello there, how are you doing today".split():
        first.push_text(w)
    first.push_eos()
    _run(tts)
    second = tts.acquire(loop)
    for w in "fine thanks".split():
        second.push_text(w)
    second.push_eos()
    _run(tts)
    tts.release(first)
    tts.release(second)


async def test_warm_up_reaches_every_graphed_and_compiled_callable_before_threads_start(
    calls: Calls, tiny_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_start: dict[str, tuple[Counter[int], set[Any]]] = {}

    def record_start(self: SlotEngine[Any]) -> None:
        # Stands in for the thread start: the test steps the engines itself afterwards.
        at_start[self.name] = calls.snapshot()

    monkeypatch.setattr(SlotEngine, "start", record_start)
    settings = _settings(tiny_cache)
    engines = server.load_engines(settings, server.get_profile("tiny", tiny_cache))
    assert set(engines["warmup"]) == {"stt", "tts"}
    server.start_threads(engines)
    assert set(at_start) == {"stt", "tts"}
    warm_graphed, warm_compiled = at_start["tts"]
    assert at_start["stt"][0] == warm_graphed  # nothing ran between the two starts

    loop = asyncio.get_running_loop()
    before_serving = calls.snapshot()
    _serve_conversations(engines, loop)
    served_graphed = calls.graphed - before_serving[0]
    served_compiled = calls.compiled

    owners = {calls.graphed_owner[i] for i in served_graphed}
    # The wrappers saw the real paths of both engines (else this test proves nothing).
    assert {"LMModel.forward_text", "LMGen.depformer_step"} <= owners, owners
    assert {"SEANetEncoder", "SEANetDecoder"} <= owners, owners
    assert any("_set_exec_mask" in o for o in owners), owners
    assert {name for name, _ in served_compiled} == {"_rms_norm", "apply_rope"} | (
        {"gating_forward_kernel"} & {name for name, _ in warm_compiled}
    )

    cold = {calls.graphed_owner[i]: warm_graphed[i] for i in served_graphed if warm_graphed[i] < 2}
    assert not cold, f"graphed callables not captured by the warm-up: {cold}"
    new_signatures = served_compiled - warm_compiled
    assert not new_signatures, f"compiled kernels first seen while serving: {new_signatures}"


async def test_warm_up_refuses_a_running_engine(tiny_cache: Path) -> None:
    engines = server.build_engines(_settings(tiny_cache), server.get_profile("tiny", tiny_cache))
    stt = engines["stt"]
    stt.start()
    try:
        with pytest.raises(WarmupError, match="before the engine thread starts"):
            warm_engine(stt)
    finally:
        stt.stop()


def test_warm_up_leaves_no_trace_in_metrics_or_counters(tiny_cache: Path) -> None:
    engines = server.load_engines(_settings(tiny_cache), server.get_profile("tiny", tiny_cache))
    metrics = engines["metrics"]
    for name in ("stt", "tts"):
        engine = engines[name]
        assert engine.steps == 0 and engine.model_time_total == 0.0
        assert engine.open_slots == 0
        assert metrics.sessions.labels(name)._value.get() == 0
        assert metrics.free_slots.labels(name)._value.get() == engine.batch_size
    assert engines["warmup"]["stt"] > 0 and engines["warmup"]["tts"] > 0


def test_engine_steps_hold_their_model_lock(tiny_cache: Path) -> None:
    engines = server.build_engines(_settings(tiny_cache), server.get_profile("tiny", tiny_cache))
    seen: list[bool] = []
    for name in ("stt", "tts"):
        engine = engines[name]
        original = engine.step

        def spy(*args: Any, _engine: Any = engine, _orig: Any = original) -> Any:
            seen.append(_engine.model_lock.locked())
            return _orig(*args)

        engine.step = spy
        warm_engine(engine)
    assert seen and all(seen)
    # CPU: nothing is ever captured, so the engines keep running in parallel.
    assert engines["stt"].model_lock is not engines["tts"].model_lock


def test_engines_on_a_gpu_share_one_lock() -> None:
    assert device_policy.model_lock("cuda") is device_policy.MODEL_LOCK
    assert device_policy.model_lock("cuda:1") is device_policy.MODEL_LOCK
    assert device_policy.model_lock("cpu") is not device_policy.model_lock("cpu")
