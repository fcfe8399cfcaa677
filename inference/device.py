"""How the engines share one device: the compile policy and the one model lock.

Two rules keep CUDA graphs and `torch.compile` safe with several engines in one process:

1. **One lock per CUDA device.** Every engine step on a CUDA device (serving and warm-up)
   runs while holding `MODEL_LOCK` (`model_lock`). moshi captures a CUDA graph lazily, on a
   callable's second call, with `torch.cuda.graph`'s default `capture_error_mode="global"`:
   an action of another thread during a capture fails it, and a failed capture leaves the
   callable broken for good. With the lock, no two engine threads touch the GPU at once, so
   a capture can never overlap another engine's step, even one the warm-up missed. All
   engines share one kernel stream anyway; the lock only costs the overlap of one engine's
   Python bookkeeping with the other's kernels. On CPU moshi never graphs (it disables
   `CUDAGraphed` off CUDA), so each engine gets its own lock and the two engines keep running
   in parallel on the cores (sharing one cost 40% of STT throughput on 2 cores).
2. **Warm-up before serving** (`inference/warmup.py`): every graphed and compiled callable is
   called, and so compiled and captured, before the engine threads start and before the server
   listens.

The compile policy must be settled before moshi is imported: moshi reads `NO_TORCH_COMPILE`
when its modules are imported and `NO_CUDA_GRAPH` when a graphed callable is first used.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

CompilePolicy = Literal["auto", "on", "off"]


class ModelLock:
    """A device's step lock in which clocked engines go first.

    STT and TTS step back to back while they have work, re-taking the lock at once; a plain
    lock (not fair) could then keep Moshi, whose step has an 80 ms deadline, waiting through
    several of their steps. `urgent()` holders are served before any ordinary waiter, so
    Moshi waits for at most the one step already running."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._held = False
        self._urgent_waiting = 0
        self.waiting = 0  # threads waiting for the lock (tests)

    def locked(self) -> bool:
        return self._held

    def _acquire(self, urgent: bool) -> None:
        with self._cond:
            if urgent:
                self._urgent_waiting += 1
            self.waiting += 1
            while self._held or (not urgent and self._urgent_waiting):
                self._cond.wait()
            self.waiting -= 1
            if urgent:
                self._urgent_waiting -= 1
            self._held = True

    def _release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def __enter__(self) -> ModelLock:
        self._acquire(urgent=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    @contextmanager
    def urgent(self) -> Iterator[None]:
        self._acquire(urgent=True)
        try:
            yield
        finally:
            self._release()


MODEL_LOCK = ModelLock()


def model_lock(device: str) -> ModelLock:
    """The lock an engine on `device` holds around each step (see rule 1 above)."""
    return MODEL_LOCK if device.startswith("cuda") else ModelLock()


# Triton builds its kernel launchers with a C compiler; Inductor's CPU path needs one too.
C_COMPILERS = ("cc", "gcc", "clang")


_NO_COMPILER = (
    "KYUTAI_TORCH_COMPILE=on needs a C compiler for Triton/Inductor (none of "
    f"{', '.join(C_COMPILERS)} or $CC on PATH): install build-essential, or set "
    "KYUTAI_TORCH_COMPILE=auto or off (CUDA graphs still apply)"
)


class DeviceConfigError(RuntimeError):
    """The configured compile policy cannot run here; the message says what to change."""


@dataclass(frozen=True)
class TorchPolicy:
    device: str
    compile: bool
    cuda_graphs: bool
    reason: str


def find_c_compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc and shutil.which(cc):
        return cc
    for name in C_COMPILERS:
        if shutil.which(name):
            return name
    return None


def env_flag(name: str) -> bool:
    """moshi's reading of NO_TORCH_COMPILE / NO_CUDA_GRAPH: set to anything but 0/no/n/""."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "n")


def decide(
    device: str,
    policy: CompilePolicy,
    compiler: str | None,
    *,
    no_compile_env: bool = False,
    no_graph_env: bool = False,
) -> TorchPolicy:
    """Pure decision: compile and graph on CUDA (what Kyutai runs), nothing on CPU.

    `no_compile_env` / `no_graph_env`: the operator set moshi's own switches; they win."""
    if not device.startswith("cuda"):
        # Tiny models on CPU: compilation costs seconds and buys little; graphs need CUDA.
        # `on` stays possible (Inductor's CPU path), to rehearse the compiled warm-up here.
        if policy == "on" and not no_compile_env:
            if compiler is None:
                raise DeviceConfigError(_NO_COMPILER)
            return TorchPolicy(
                device, True, False, f"cpu: torch.compile on (C compiler: {compiler})"
            )
        return TorchPolicy(device, False, False, "cpu: no torch.compile, no CUDA graphs")
    graphs = not no_graph_env
    if no_compile_env:
        return TorchPolicy(device, False, graphs, "NO_TORCH_COMPILE is set")
    if policy == "off":
        return TorchPolicy(device, False, graphs, "KYUTAI_TORCH_COMPILE=off")
    if compiler is None:
        if policy == "on":
            raise DeviceConfigError(_NO_COMPILER)
        return TorchPolicy(
            device,
            False,
            graphs,
            "no C compiler found for Triton: torch.compile off (install build-essential to "
            "enable it)",
        )
    return TorchPolicy(device, True, graphs, f"torch.compile on (C compiler: {compiler})")


def apply(policy: TorchPolicy) -> None:
    """Export the decision to moshi through its environment switches, before it is imported."""
    if not policy.compile:
        os.environ["NO_TORCH_COMPILE"] = "1"
    if not policy.cuda_graphs:
        os.environ["NO_CUDA_GRAPH"] = "1"
    if "moshi.modules.transformer" in sys.modules:
        # Too late for the compile switch: say so rather than run with a surprise.
        log.warning("moshi was imported before the compile policy was applied")
    log.info("device %s: %s", policy.device, policy.reason)


def threads_per_op(configured: int, device: str, cores: int, engines: int) -> int | None:
    """CPU threads torch may give one operation; None keeps torch's default (one per core).

    `configured` (KYUTAI_TORCH_THREADS) wins when set. Otherwise, on a CPU, the cores are shared
    out among the engines, since each steps on a thread of its own: torch's default lets every
    engine's operations claim every core at once, and on 2 cores three engines then spend their
    time contending (measured in docs/moshi.md). On a GPU the default stays."""
    if configured > 0:
        return configured
    if device.startswith("cuda"):
        return None
    return max(1, cores // max(1, engines))


def compile_enabled() -> bool:
    return not env_flag("NO_TORCH_COMPILE")
