"""The load a worker reports to LiveKit: job budget and the inference servers' free slots."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from aiohttp import web

from agent.ops.capacity import (
    MOSHI_OPEN_S,
    SERVER_TARGET_LOAD,
    InferenceCapacity,
    Slots,
    WorkerLoad,
    combine_slots,
    fetch_slots,
    full_load,
    job_load,
    moshi_admits,
    parse_slot_gauges,
    worker_load,
)
from agent.ops.urls import http_endpoint
from agent.settings import AgentSettings
from inference.metrics import Metrics

METRICS = """# HELP kyutai_slots_open Slots held by a session
# TYPE kyutai_slots_open gauge
kyutai_slots_open{engine="stt"} 3.0
kyutai_slots_open{engine="tts"} 4.0
# TYPE kyutai_slots_free gauge
kyutai_slots_free{engine="stt"} 5.0
kyutai_slots_free{engine="tts"} 0.0
kyutai_step_seconds_bucket{engine="stt",le="0.001"} 0.0
"""


def running(n: int) -> list[SimpleNamespace]:
    """What AgentServer.active_jobs lists: one RunningJobInfo per job a process runs."""
    return [SimpleNamespace(job=SimpleNamespace(id=f"AJ_{i}")) for i in range(n)]


def test_job_load_is_the_fraction_of_the_budget() -> None:
    assert job_load(0, 4) == 0.0
    assert job_load(2, 4) == 0.5
    assert job_load(9, 4) == 1.0
    assert job_load(1, 0) == 1.0


def test_parse_reads_the_gauges_the_inference_server_exports() -> None:
    assert parse_slot_gauges(METRICS) == {"stt": Slots(5, 8), "tts": Slots(0, 4)}
    assert parse_slot_gauges("garbage\n{}") == {}


def test_parse_matches_the_real_registry() -> None:
    from prometheus_client import generate_latest

    metrics = Metrics()
    metrics.open_slots.labels("stt").set(1)
    metrics.free_slots.labels("stt").set(7)
    assert parse_slot_gauges(generate_latest(metrics.registry).decode()) == {"stt": Slots(7, 8)}


def test_slots_load_and_unknown_is_full() -> None:
    assert Slots(8, 8).load == 0.0
    assert Slots(2, 8).load == 0.75
    assert Slots(0, 8).load == 1.0
    assert Slots(0, 0).load == 1.0


def test_combine_counts_an_unreachable_server_as_no_free_slot() -> None:
    a = {"stt": Slots(0, 8), "tts": Slots(1, 4)}
    b = {"stt": Slots(4, 8)}
    assert combine_slots([a, b], "stt") == Slots(4, 16)
    assert combine_slots([a, None], "tts") == Slots(1, 4)
    assert combine_slots([None, None], "stt").load == 1.0


@pytest.mark.parametrize(
    ("jobs", "max_jobs", "inference", "expected"),
    [
        (0, 16, None, 0.0),
        (2, 16, {"stt": Slots(8, 8), "tts": Slots(4, 4)}, 0.5),  # 2 of the 4 TTS slots
        # Jobs whose sessions have not opened their slots yet still count against them.
        (4, 16, {"stt": Slots(8, 8), "tts": Slots(4, 4)}, 1.0),
        (1, 16, {"stt": Slots(2, 8), "tts": Slots(4, 4)}, 0.75),
        (1, 16, {"stt": Slots(8, 8), "tts": Slots(0, 4)}, 1.0),  # TTS full: full
        (16, 16, {"stt": Slots(8, 8), "tts": Slots(4, 4)}, 1.0),  # job budget spent
        (0, 16, {"stt": Slots(0, 0), "tts": Slots(0, 0)}, 1.0),  # nothing reachable
    ],
)
def test_worker_load_is_the_busiest_resource(
    jobs: int, max_jobs: int, inference: dict[str, Slots] | None, expected: float
) -> None:
    assert worker_load(jobs, max_jobs, inference) == pytest.approx(expected)


def test_metrics_endpoint_from_service_urls() -> None:
    assert http_endpoint("ws://inference:8089", "/metrics") == "http://inference:8089/metrics"
    assert http_endpoint("wss://gpu.example.com/api/asr-streaming", "/metrics") == (
        "https://gpu.example.com/metrics"
    )
    assert (
        http_endpoint("http://10.0.0.2:9000/metrics", "/metrics") == "http://10.0.0.2:9000/metrics"
    )
    # an endpoint behind a proxy prefix, as AGENT_CAPACITY_METRICS_URL may give it
    assert http_endpoint("https://proxy/kyutai/metrics", "/metrics") == (
        "https://proxy/kyutai/metrics"
    )


def test_poller_sums_servers_per_engine_and_never_blocks() -> None:
    answers = {
        "http://a:1/metrics": {"stt": Slots(0, 8), "tts": Slots(2, 4)},
        "http://b:1/metrics": {"stt": Slots(8, 8), "tts": Slots(4, 4)},
    }
    calls: list[str] = []

    def fetch(url: str, _timeout: float) -> dict[str, Slots] | None:
        calls.append(url)
        return answers.get(url)

    now = [100.0]
    capacity = InferenceCapacity(
        {"stt": ["ws://a:1", "ws://b:1"], "tts": ["ws://a:1"]},
        fetch=fetch,
        clock=lambda: now[0],
        max_age_s=5,
    )
    snapshot = capacity.refresh()
    assert snapshot == {"stt": Slots(8, 16), "tts": Slots(2, 4)}
    assert sorted(calls) == ["http://a:1/metrics", "http://b:1/metrics"]  # a fetched once
    capacity._thread = threading.current_thread()  # no background thread in this test
    assert capacity.slots() == snapshot
    now[0] += 10  # the poller is stuck: a stale snapshot reads as full
    assert all(s.load == 1.0 for s in capacity.slots().values())


def test_unreachable_server_reads_as_full() -> None:
    assert fetch_slots("http://127.0.0.1:9/metrics", 0.5) is None
    capacity = InferenceCapacity({"stt": ["ws://127.0.0.1:9"]}, timeout_s=0.2)
    assert capacity.refresh() == {"stt": Slots(0, 0)}
    assert worker_load(0, 16, capacity.slots()) == 1.0
    capacity.stop()


async def test_load_fnc_reads_a_live_metrics_endpoint() -> None:
    body = [METRICS]

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text=body[0])

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = AgentSettings(
            KYUTAI_STT_URL=f"ws://127.0.0.1:{port}",
            KYUTAI_TTS_URL=f"ws://127.0.0.1:{port}",
            AGENT_MAX_JOBS=4,
            AGENT_CAPACITY_POLL_S=0.05,
        )
        load_fnc = WorkerLoad(settings)
        server = SimpleNamespace(active_jobs=running(1))
        loop = asyncio.get_running_loop()
        full = full_load(settings)
        assert full == SERVER_TARGET_LOAD  # AGENT_LOAD_THRESHOLD=1.0 on livekit-server's scale
        assert await loop.run_in_executor(None, load_fnc, server) == full  # TTS has no slot
        body[0] = METRICS.replace('free{engine="tts"} 0.0', 'free{engine="tts"} 4.0')
        deadline = loop.time() + 5
        while await loop.run_in_executor(None, load_fnc, server) != full * 0.5:  # TTS 4/8 held
            assert loop.time() < deadline, "the poller never saw the free TTS slots"
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()


def test_load_fnc_without_inference_counts_jobs_only() -> None:
    settings = AgentSettings(AGENT_MAX_JOBS=4, AGENT_CAPACITY_FROM_INFERENCE=False)
    load_fnc = WorkerLoad(settings)
    assert load_fnc(SimpleNamespace(active_jobs=running(2))) == pytest.approx(
        0.5 * SERVER_TARGET_LOAD
    )
    # A broken server object: full, never raises.
    assert load_fnc(SimpleNamespace()) == full_load(settings)


def test_the_reported_load_stays_under_livekit_servers_target_until_full() -> None:
    # livekit-server offers jobs only below its target load (0.7): 3 of 4 must still get one.
    settings = AgentSettings(AGENT_MAX_JOBS=4, AGENT_CAPACITY_FROM_INFERENCE=False)
    load_fnc = WorkerLoad(settings)
    assert load_fnc(SimpleNamespace(active_jobs=running(3))) < SERVER_TARGET_LOAD
    assert load_fnc(SimpleNamespace(active_jobs=running(4))) >= full_load(settings)


async def test_a_finished_job_is_reported_to_livekit_at_once() -> None:
    from livekit.agents.utils import EventEmitter

    settings = AgentSettings(AGENT_MAX_JOBS=2, AGENT_CAPACITY_FROM_INFERENCE=False)
    load = WorkerLoad(settings)
    reported = asyncio.Event()

    class FakeServer:
        def __init__(self) -> None:
            self._proc_pool: EventEmitter[str] = EventEmitter()
            self._worker_load = load(SimpleNamespace(active_jobs=running(2)))
            self.active_jobs = running(2)

        async def _update_worker_status(self) -> None:
            reported.set()

    server = FakeServer()
    assert server._worker_load == full_load(settings)
    load.report_freed_slots(server)
    server.active_jobs = running(1)
    server._proc_pool.emit("process_closed", object())
    await asyncio.wait_for(reported.wait(), 5)
    assert server._worker_load == pytest.approx(0.5 * SERVER_TARGET_LOAD)


def test_jobs_being_accepted_count_before_their_process_runs_them() -> None:
    settings = AgentSettings(AGENT_MAX_JOBS=4, AGENT_CAPACITY_FROM_INFERENCE=False)
    load = WorkerLoad(settings)
    server = SimpleNamespace(active_jobs=running(2))
    load.accepting("AJ_new1")
    load.accepting("AJ_new2")
    assert load.jobs(server) == 4
    assert load(server) >= full_load(settings)  # a burst stops at the budget
    # Once a process runs one, it is counted there (not twice); a refused one stops counting.
    server.active_jobs = [*running(2), SimpleNamespace(job=SimpleNamespace(id="AJ_new1"))]
    assert load.jobs(server) == 4
    load.not_accepted("AJ_new2")
    assert load.jobs(server) == 3


def test_moshi_slots_do_not_make_the_load_but_decide_duplex_admission() -> None:
    # A full Moshi must not turn cascade rooms away: the load is STT's and TTS's.
    inference = {"stt": Slots(4, 8), "tts": Slots(8, 8), "moshi": Slots(0, 4)}
    assert worker_load(0, 16, inference) == pytest.approx(0.5)
    assert moshi_admits(Slots(1, 4), opening=0)
    assert not moshi_admits(Slots(1, 4), opening=1)  # that one is being opened
    assert not moshi_admits(Slots(0, 4), opening=0)
    # No server reports Moshi slots (unreachable, or no Moshi engine): the session says so in
    # the room, which a wait in line would not.
    assert moshi_admits(Slots(0, 0), opening=3) and moshi_admits(None, opening=0)


def test_a_duplex_burst_takes_no_more_moshi_slots_than_are_free() -> None:
    now = [100.0]
    gauges = {"stt": Slots(8, 8), "tts": Slots(8, 8), "moshi": Slots(2, 2)}
    settings = AgentSettings(KYUTAI_MOSHI_URL="ws://127.0.0.1:9", AGENT_MAX_JOBS=8)
    load = WorkerLoad(settings, duplex=True, clock=lambda: now[0])
    capacity = InferenceCapacity(
        {"stt": ["ws://a"], "tts": ["ws://a"], "moshi": ["ws://a"]},
        fetch=lambda _url, _timeout: dict(gauges),
        clock=lambda: now[0],
    )
    capacity._thread = threading.current_thread()  # no background thread: polled by hand
    load.capacity = capacity
    capacity.refresh()
    # the gauges show 2 free: two duplex jobs are accepted, the third is declined
    assert load.admits_duplex()
    load.accepting("AJ_d1", duplex=True)
    assert load.admits_duplex()
    load.accepting("AJ_d2", duplex=True)
    assert not load.admits_duplex()
    # a cascade job holds no Moshi slot
    load.accepting("AJ_c1")
    # Once the gauges can show the two sessions, they are counted there, not twice: a slot
    # freed since then (one session ended) admits a job again.
    now[0] += 2 * MOSHI_OPEN_S
    gauges["moshi"] = Slots(1, 2)
    capacity.refresh()
    assert load.admits_duplex()
    gauges["moshi"] = Slots(0, 2)
    capacity.refresh()
    assert not load.admits_duplex()


def test_without_the_gauges_every_duplex_job_is_admitted() -> None:
    settings = AgentSettings(AGENT_CAPACITY_FROM_INFERENCE=False)
    load = WorkerLoad(settings, duplex=True)
    load.accepting("AJ_d1", duplex=True)
    assert load.capacity is None and load.admits_duplex()
