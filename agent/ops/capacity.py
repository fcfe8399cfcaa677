"""How loaded this worker is, as LiveKit's dispatcher sees it (0 = idle, 1 = full).

A Kyutai agent's job is cheap on the worker's CPU: the expensive work happens on the inference
server's GPU. LiveKit's default load (CPU usage) would turn new rooms away from a host whose
CPU is busy with something else while its GPU has room, so we count conversations instead, and
(by default) the inference servers' free STT/TTS slots: a worker whose inference servers are
full reports itself full, so LiveKit sends new rooms to another node.

Moshi's slots are held by duplex conversations only, so they are not in that load (a full Moshi
must not turn cascade rooms away): a duplex job is rejected at its request instead
(`WorkerLoad.admits_duplex`). LiveKit then offers it to another worker; when none takes it, the
room waits in the dispatcher's line, told its place, until a Moshi slot frees.

`load_fnc` is called by the framework in an executor every ~0.5 s and before each job offer:
`InferenceCapacity` answers from a snapshot refreshed by a background thread, never blocks on
the network and never raises. An unreachable inference server counts as full.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agent.log import logger
from agent.ops.urls import http_endpoint

# Engines every conversation holds a slot of: they make the load LiveKit sees.
LOAD_ENGINES = ("stt", "tts")
MOSHI = "moshi"
# A duplex job's Moshi session is in the slot gauges this long after the job was accepted (its
# process ran, joined the room, opened the session): a snapshot older than that does not show
# it, so the job counts against the free slots it reports. A session slower to open can still
# find Moshi full: it tells the room and gives it back (agent/events.py).
MOSHI_OPEN_S = 5.0
# livekit-server offers a job only to workers whose reported load is under its target load
# (0.7 in v1.13.5: pkg/agent/config.go DefaultTargetLoad; LiveKit Cloud uses the same), so a
# worker at 3 of 4 conversations (0.75) would never get its fourth. The load we report is our
# fraction scaled to that target, and the worker calls itself full at the same point.
SERVER_TARGET_LOAD = 0.7
# An accepted job whose process never ran it (assignment lost) stops counting after this.
ACCEPT_TTL_S = 60.0
# Gauges of the inference server (inference/metrics.py).
FREE_GAUGE = "kyutai_slots_free"
OPEN_GAUGE = "kyutai_slots_open"
_SAMPLE = re.compile(
    r'^(?P<name>kyutai_slots_(?:free|open))\{engine="(?P<engine>[a-z]+)"\}\s+(?P<value>\S+)\s*$'
)


def job_load(active_jobs: int, max_jobs: int) -> float:
    """Fraction of this worker's conversation budget in use."""
    if max_jobs <= 0:
        return 1.0
    return min(1.0, max(0.0, active_jobs / max_jobs))


@dataclass(frozen=True)
class Slots:
    """Slots of one engine summed over the servers that serve it."""

    free: int
    total: int

    @property
    def load(self) -> float:
        """Occupied fraction; no known slot (nothing reachable) is full."""
        if self.total <= 0:
            return 1.0
        return min(1.0, max(0.0, 1.0 - self.free / self.total))


def parse_slot_gauges(text: str) -> dict[str, Slots]:
    """`kyutai_slots_free` / `kyutai_slots_open` per engine from a /metrics body."""
    values: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            try:
                values[(match["name"], match["engine"])] = float(match["value"])
            except ValueError:
                continue
    out: dict[str, Slots] = {}
    for engine in {e for _n, e in values}:
        free = max(0, int(values.get((FREE_GAUGE, engine), 0)))
        held = max(0, int(values.get((OPEN_GAUGE, engine), 0)))
        out[engine] = Slots(free=free, total=free + held)
    return out


def combine_slots(per_server: Iterable[dict[str, Slots] | None], engine: str) -> Slots:
    """Sum one engine's slots over its servers; an unreachable server adds no free slot."""
    free = total = 0
    for slots in per_server:
        if slots is not None and engine in slots:
            free += slots[engine].free
            total += slots[engine].total
    return Slots(free=free, total=total)


def worker_load(
    active_jobs: int, max_jobs: int, inference: dict[str, Slots] | None = None
) -> float:
    """The load reported to LiveKit: the busiest of the worker's job budget and each
    inference engine's slots (1.0 = full: LiveKit offers new rooms to other workers).

    A conversation holds one slot of each engine, so a worker never takes more conversations
    than its engines have slots in all: with that bound, LiveKit's per-job estimate (load /
    jobs, charged to each job accepted but not yet running) stops a burst of dispatches at the
    slot count, before the slot gauges (polled) have seen any of them."""
    load = job_load(active_jobs, max_jobs)
    for engine, slots in (inference or {}).items():
        if engine not in LOAD_ENGINES:
            continue
        load = max(load, slots.load)
        if slots.total > 0:
            load = max(load, job_load(active_jobs, slots.total))
    return load


def moshi_admits(slots: Slots | None, opening: int) -> bool:
    """Whether a duplex conversation can have a Moshi slot: one free beyond the `opening`
    duplex jobs accepted whose sessions the gauges may not show yet.

    No server reporting Moshi slots (unreachable, or no Moshi engine) admits: the session then
    tells the room why Moshi is unavailable, which a wait in line would not."""
    if slots is None or slots.total <= 0:
        return True
    return slots.free > opening


def fetch_slots(url: str, timeout_s: float) -> dict[str, Slots] | None:
    """The slot gauges at `url`, or None when they can't be read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = resp.read(1_000_000).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return parse_slot_gauges(body)


class InferenceCapacity:
    """Keeps a fresh snapshot of the inference servers' free slots, per engine.

    `engine_urls` maps "stt"/"tts"/"moshi" to the servers the plugins use for it (the same
    server may serve several). A daemon thread polls every `interval_s`; `slots()` returns the last
    snapshot, or every engine full when the snapshot is older than `max_age_s` (default:
    a few polling rounds).
    """

    def __init__(
        self,
        engine_urls: dict[str, list[str]],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 1.0,
        max_age_s: float | None = None,
        fetch: Callable[[str, float], dict[str, Slots] | None] = fetch_slots,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine_urls = {
            engine: [http_endpoint(u, "/metrics") for u in urls]
            for engine, urls in engine_urls.items()
            if urls
        }
        n_urls = len({u for us in self._engine_urls.values() for u in us})
        # Older than a few polls (each may wait `timeout_s` per server): the poller is stuck.
        self._max_age_s = max_age_s or 3 * interval_s + timeout_s * n_urls + 2.0
        self._interval_s, self._timeout_s = interval_s, timeout_s
        self._fetch, self._clock = fetch, clock
        self._snapshot: dict[str, Slots] | None = None
        self._taken_at = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._was_full: bool | None = None
        self._first = threading.Event()

    def refresh(self) -> dict[str, Slots]:
        """Poll every server once and store the result (called by the thread; tests too)."""
        urls = sorted({u for us in self._engine_urls.values() for u in us})
        fetched = {u: self._fetch(u, self._timeout_s) for u in urls}
        snapshot = {
            engine: combine_slots((fetched[u] for u in us), engine)
            for engine, us in self._engine_urls.items()
        }
        with self._lock:
            self._snapshot, self._taken_at = snapshot, self._clock()
        self._first.set()
        full = any(s.load >= 1.0 for s in snapshot.values())
        if full != self._was_full:
            self._was_full = full
            unreachable = [u for u, v in fetched.items() if v is None]
            logger.info(
                "inference slots %s%s",
                {e: f"{s.free}/{s.total} free" for e, s in snapshot.items()},
                f" (unreachable: {', '.join(unreachable)})" if unreachable else "",
            )
        return snapshot

    def slots(self) -> dict[str, Slots]:
        """The last snapshot; every engine full if there is none recent (never raises)."""
        self.start()
        # The first poll is under way right after start-up: wait for it (bounded) rather
        # than turn the first rooms away.
        self._first.wait(self._timeout_s * max(1, len(self._engine_urls)) + 0.5)
        with self._lock:
            snapshot, taken_at = self._snapshot, self._taken_at
        if snapshot is None or self._clock() - taken_at > self._max_age_s:
            return {engine: Slots(0, 0) for engine in self._engine_urls}
        return snapshot

    @property
    def taken_at(self) -> float:
        """When the last snapshot was taken (the clock's time; 0: none yet)."""
        with self._lock:
            return self._taken_at

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="inference-capacity", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # never let the poller die: a stale snapshot reads as full
                logger.exception("polling the inference servers' slots failed")
            self._stop.wait(self._interval_s)


class WorkerLoad:
    """The `load_fnc` for AgentServer: jobs/max_jobs, and the inference servers' slots when
    `settings.capacity_from_inference` (AGENT_CAPACITY_FROM_INFERENCE) is on; scaled to
    `SERVER_TARGET_LOAD` (full = `full_load(settings)`)."""

    def __init__(
        self,
        settings: Any,
        *,
        duplex: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`duplex`: the catalogue has duplex characters, so Moshi's slots are watched too."""
        self.max_jobs: int = settings.max_jobs
        self._clock = clock
        self._accepting: dict[str, float] = {}  # job id -> when accepted
        self._lock = threading.Lock()  # load_fnc runs in the framework's executor
        self._opening_duplex: dict[str, float] = {}  # duplex job id -> when accepted
        self.capacity: InferenceCapacity | None = None
        if settings.capacity_from_inference:
            override = [u.strip() for u in (settings.capacity_metrics_url or "").split(",")]
            override = [u for u in override if u]
            engine_urls = {
                "stt": override or list(settings.stt_urls),
                "tts": override or list(settings.tts_urls),
            }
            if duplex:
                engine_urls[MOSHI] = override or list(settings.moshi_urls)
            self.capacity = InferenceCapacity(
                engine_urls, interval_s=settings.capacity_poll_interval_s, clock=clock
            )

    def accepting(self, job_id: str, *, duplex: bool = False) -> None:
        """A job this worker is accepting: it counts from now, not once its process runs.

        LiveKit's AgentServer counts a job from when a process runs it (`active_jobs`); while a
        process is still starting (seconds on a busy host) the job was invisible, and a burst
        of dispatches got more conversations than there are slots."""
        now = self._clock()
        with self._lock:
            self._accepting[job_id] = now
            if duplex:
                self._opening_duplex[job_id] = now

    def not_accepted(self, job_id: str) -> None:
        with self._lock:
            self._accepting.pop(job_id, None)
            self._opening_duplex.pop(job_id, None)

    def admits_duplex(self) -> bool:
        """Whether a duplex job may be accepted now: a free Moshi slot is left beyond the duplex
        jobs accepted too recently for the gauges to show (a burst must not take more than
        there are). Without the slot gauges (AGENT_CAPACITY_FROM_INFERENCE off), always."""
        if self.capacity is None:
            return True
        slots = self.capacity.slots().get(MOSHI)
        seen_until = self.capacity.taken_at - MOSHI_OPEN_S
        now = self._clock()
        with self._lock:
            for job_id, since in list(self._opening_duplex.items()):
                if now - since > ACCEPT_TTL_S:
                    del self._opening_duplex[job_id]
            opening = sum(1 for since in self._opening_duplex.values() if since > seen_until)
        return moshi_admits(slots, opening)

    def jobs(self, server: Any) -> int:
        """Running jobs, and the ones accepted whose process is not running them yet."""
        running = {info.job.id for info in server.active_jobs}
        now = self._clock()
        with self._lock:
            for job_id, since in list(self._accepting.items()):
                if job_id in running or now - since > ACCEPT_TTL_S:
                    del self._accepting[job_id]
            return len(running) + len(self._accepting)

    def __call__(self, server: Any) -> float:
        try:
            active = self.jobs(server)
            slots = self.capacity.slots() if self.capacity else None
            return SERVER_TARGET_LOAD * worker_load(active, self.max_jobs, slots)
        except Exception:  # the framework must always get an answer
            logger.exception("computing the worker load failed; reporting full")
            return SERVER_TARGET_LOAD

    def report_freed_slots(self, server: Any) -> None:
        """When a job process ends, tell LiveKit at once that this worker has room again.

        LiveKit's AgentServer sends its status every 2.5 s (UPDATE_STATUS_INTERVAL), and the
        server offers no room to a worker it believes full: the next room in line would wait
        that long for nothing. This uses the framework's private `_proc_pool` and
        `_update_worker_status` (livekit-agents 1.8.9); without them it does nothing."""
        pool = getattr(server, "_proc_pool", None)
        update = getattr(server, "_update_worker_status", None)
        if pool is None or update is None or not hasattr(server, "_worker_load"):
            logger.warning("this livekit-agents has no job-end hook: freed slots wait 2.5 s")
            return
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        async def report() -> None:
            try:
                if self.capacity is not None:
                    await asyncio.to_thread(self.capacity.refresh)  # the job's sockets closed
                server._worker_load = await loop.run_in_executor(None, self, server)
                await update()
            except Exception:  # the periodic status still goes out
                logger.exception("reporting the freed slot failed")

        def on_closed(_proc: object) -> None:
            task = loop.create_task(report())
            pending.add(task)
            task.add_done_callback(pending.discard)

        pool.on("process_closed", on_closed)


def full_load(settings: Any) -> float:
    """AgentServer's `load_threshold`: AGENT_LOAD_THRESHOLD on the scale `load_fnc` reports."""
    return SERVER_TARGET_LOAD * float(settings.load_threshold)
