"""Slot bookkeeping and the model thread shared by the STT and TTS engines.

Each engine owns one fixed-size batch. Sessions are slots: the asyncio side claims a slot and
pushes input into it; a dedicated thread steps the whole batch whenever some slot has work and
hands results back to the event loop with `call_soon_threadsafe`. With no work the thread sleeps
on an event, so an idle server costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Any, Generic, TypeVar

from inference.device import model_lock
from inference.metrics import Metrics

log = logging.getLogger(__name__)


class Session:
    """One client's slot. `inbox` is filled by the event loop and drained by the model thread
    (deque append/popleft are atomic); outputs travel back through `queue`."""

    def __init__(self, slot: int, loop: asyncio.AbstractEventLoop) -> None:
        self.slot = slot
        self.loop = loop
        self.queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
        self.inbox: deque[Any] = deque()
        self.closed = False
        self.finished = False  # set by the model thread once the session ended on its side

    def emit(self, msgs: list[dict[str, Any]] | None) -> None:
        """Called from the model thread; `None` tells the connection to close."""
        if self.closed:
            return
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, msgs)
        except RuntimeError:  # the loop is gone (shutdown)
            pass


S = TypeVar("S", bound=Session)


class SlotEngine(Generic[S]):
    name = "engine"
    clocked = False  # steps on an 80 ms clock (Moshi) rather than whenever there is work

    def __init__(self, batch_size: int, metrics: Metrics, *, device: str) -> None:
        self.batch_size = batch_size
        self.model_lock = model_lock(device)
        self.metrics = metrics
        self._lock = threading.Lock()
        self._slots: list[S | None] = [None] * batch_size
        self._needs_reset = [False] * batch_size
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.steps = 0
        self.step_time_total = 0.0
        # Time inside the model forward (Mimi + LM, device syncs included); the rest of a step
        # is the engine's own overhead (slot bookkeeping, framing, hand-off to the event loop).
        self.model_time_total = 0.0
        self._update_gauges()

    # ---- called from the event loop -------------------------------------------------------
    def new_session(self, slot: int, loop: asyncio.AbstractEventLoop) -> S:
        raise NotImplementedError

    def acquire(self, loop: asyncio.AbstractEventLoop) -> S | None:
        with self._lock:
            for i, s in enumerate(self._slots):
                if s is None:
                    session = self.new_session(i, loop)
                    self._slots[i] = session
                    self._needs_reset[i] = True
                    break
            else:
                self.metrics.rejected.labels(self.name).inc()
                return None
        self.metrics.sessions.labels(self.name).inc()
        self._update_gauges()
        self.notify()
        return session

    def release(self, session: S) -> None:
        session.closed = True
        with self._lock:
            if self._slots[session.slot] is session:
                self._slots[session.slot] = None
        self._update_gauges()

    def notify(self) -> None:
        self._wake.set()

    @property
    def open_slots(self) -> int:
        return sum(1 for s in self._slots if s is not None)

    def _update_gauges(self) -> None:
        n = self.open_slots
        self.metrics.open_slots.labels(self.name).set(n)
        self.metrics.free_slots.labels(self.name).set(self.batch_size - n)

    # ---- thread ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the model thread; call `inference.warmup.warm_up` first."""
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _snapshot(self) -> tuple[list[S | None], list[bool]]:
        with self._lock:
            sessions = list(self._slots)
            resets = list(self._needs_reset)
            self._needs_reset = [False] * self.batch_size
        return sessions, resets

    def tick(self) -> bool:
        """One batched step over the current slots; False when no slot had work.

        Resets of newly claimed slots are handed back when nothing ran, so they are applied
        by the step that first runs. The model thread calls this in a loop; tests and the
        benchmark call it directly to step synchronously.
        """
        sessions, resets = self._snapshot()
        t0 = time.perf_counter()
        try:
            # One engine on a GPU at a time: see inference/device.py. A clocked engine's
            # step has a deadline: it goes before the others' next steps.
            with self.model_lock.urgent() if self.clocked else self.model_lock:
                did = self.step(sessions, resets)
        except Exception:
            log.exception("%s step failed", self.name)
            self._fail_all(sessions)
            did = False
        if not did:
            with self._lock:
                self._needs_reset = [
                    a or (b and self._slots[i] is sessions[i])
                    for i, (a, b) in enumerate(zip(self._needs_reset, resets, strict=True))
                ]
            return False
        dt = time.perf_counter() - t0
        self.steps += 1
        self.step_time_total += dt
        self.metrics.step_seconds.labels(self.name).observe(dt)
        return True

    def _run(self) -> None:
        import torch

        torch.set_grad_enabled(False)
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            while not self._stopping and self.tick():
                pass

    def _fail_all(self, sessions: list[S | None]) -> None:
        for s in sessions:
            if s is not None and not s.closed:
                self.metrics.errors.labels(self.name).inc()
                s.emit([{"type": "Error", "message": "internal error in the model step"}])
                s.emit(None)
                s.finished = True
                self.release(s)

    def step(self, sessions: list[S | None], resets: list[bool]) -> bool:
        """Run one batched step if any slot has work; return False when there was none."""
        raise NotImplementedError
