"""Two livekit-server nodes sharing one Redis, a worker registered with each.

- rooms created on either node are dispatched to both workers;
- a worker whose inference capacity reads full (its AGENT_CAPACITY_METRICS_URL points at a
  gauge endpoint the test controls) gets no new room: all go to the other worker;
- one node stopped: new rooms keep working (a full spoken turn) on the other.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.join_token import make_token
from harness.livekit_server import LiveKitServer, start_livekit_server
from harness.participant import TestParticipant
from harness.ports import free_port
from harness.procs import wait_until
from harness.redis import Redis, start_redis
from harness.speech import speech_wav
from harness.worker import WorkerHandle, start_worker

pytestmark = pytest.mark.e2e


class SlotGauges:
    """An inference-like /metrics endpoint whose free slots the test sets."""

    def __init__(self) -> None:
        self.free = 8
        gauges = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = "".join(
                    f'kyutai_slots_free{{engine="{e}"}} {gauges.free}.0\n'
                    f'kyutai_slots_open{{engine="{e}"}} {8 - gauges.free}.0\n'
                    for e in ("stt", "tts")
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Cluster:
    redis: Redis
    nodes: list[LiveKitServer]
    workers: list[WorkerHandle]  # workers[i] registered with nodes[i]
    gauges: SlotGauges  # capacity of workers[0]


@pytest.fixture(scope="module")
def cluster(artifacts_dir: Path, agent_env: dict[str, str]) -> Iterator[Cluster]:
    logs = artifacts_dir / "logs"
    redis = start_redis(logs, "redis-multinode")
    nodes: list[LiveKitServer] = []
    workers: list[WorkerHandle] = []
    gauges = SlotGauges()
    try:
        secret = uuid.uuid4().hex + uuid.uuid4().hex
        for name in ("livekit-node-a", "livekit-node-b"):
            nodes.append(
                start_livekit_server(
                    logs,
                    name=name,
                    api_key="clusterkey",
                    api_secret=secret,
                    redis_address=redis.address,
                )
            )
        for i, node in enumerate(nodes):
            env = {
                **agent_env,
                "AGENT_STATUS_PORT": str(free_port()),
                "AGENT_PROMETHEUS_PORT": str(free_port()),
                "AGENT_MAX_JOBS": "4",
                "AGENT_NUM_IDLE_PROCESSES": "2",
                "AGENT_CAPACITY_POLL_S": "0.3",
            }
            if i == 0:
                env["AGENT_CAPACITY_METRICS_URL"] = gauges.url
            workers.append(start_worker(node, logs, name=f"worker-node-{'ab'[i]}", env=env))
        yield Cluster(redis, nodes, workers, gauges)
    finally:
        for worker in workers:
            worker.stop()
        for node in nodes:
            node.stop()
        gauges.close()
        redis.stop()


async def join(node: LiveKitServer, room: str, identity: str = "user") -> TestParticipant:
    token = make_token(
        node.api_key, node.api_secret, room=room, identity=identity, dispatch_agent="kyutai-agent"
    )
    user = TestParticipant(identity=identity)
    await user.join(node.url, token)
    return user


def host_of(cluster: Cluster, room: str) -> int:
    """Index of the worker that runs `room` (from its job's log line)."""
    hosts = [
        i for i, w in enumerate(cluster.workers) if f"room {room}:" in w.process.log_tail(4_000_000)
    ]
    assert len(hosts) == 1, f"{room} runs on workers {hosts}"
    return hosts[0]


def jobs_ended(worker: WorkerHandle) -> int:
    return worker.process.log_tail(4_000_000).count("ending the job")


async def open_rooms(
    cluster: Cluster, count: int, prefix: str
) -> list[tuple[str, TestParticipant]]:
    """`count` rooms, created alternately on node A and node B, each with its agent."""
    rooms = []
    for i in range(count):
        room = f"{prefix}-{i}-{uuid.uuid4().hex[:6]}"
        user = await join(cluster.nodes[i % 2], room, f"user-{i}")
        await user.wait_for_agent(timeout=40)
        rooms.append((room, user))
    return rooms


async def close_rooms(cluster: Cluster, rooms: list[tuple[str, TestParticipant]]) -> None:
    ended = [jobs_ended(w) for w in cluster.workers]
    hosts = [host_of(cluster, room) for room, _ in rooms]
    for _room, user in rooms:
        await user.leave()
    for i, worker in enumerate(cluster.workers):
        expected = ended[i] + hosts.count(i)
        wait_until(
            lambda w=worker, n=expected: jobs_ended(w) >= n,
            timeout=60,  # type: ignore[misc]
            what=f"{worker.process.name}'s jobs to end",
            process=worker.process,
        )


async def test_rooms_on_both_nodes_split_across_both_workers(cluster: Cluster) -> None:
    rooms = await open_rooms(cluster, 6, "split")
    hosts = [host_of(cluster, room) for room, _ in rooms]
    print(f"6 rooms (nodes A,B,A,B,A,B) went to workers {['AB'[h] for h in hosts]}")
    # AGENT_MAX_JOBS=4: neither worker may take all six, both must have some.
    assert hosts.count(0) >= 2 and hosts.count(1) >= 2, hosts
    await close_rooms(cluster, rooms)


async def test_a_worker_whose_inference_is_full_gets_no_new_room(cluster: Cluster) -> None:
    worker_a = cluster.workers[0]

    def logged(line: str) -> int:
        return worker_a.process.log_tail(4_000_000).count(line)

    full_logs = logged("worker is at full capacity")
    cluster.gauges.free = 0
    try:
        wait_until(
            lambda: logged("worker is at full capacity") > full_logs,
            timeout=15,
            what="worker A to report itself full",
            process=worker_a.process,
        )
        # livekit-server offers a room only to workers under its target load (0.7); the
        # worker reports its fraction scaled to that target, so worker B (AGENT_MAX_JOBS=4)
        # takes all four rooms, its fourth at 3/4 of its budget.
        rooms = await open_rooms(cluster, 4, "full")
        hosts = [host_of(cluster, room) for room, _ in rooms]
        print(f"with worker A full, 4 rooms went to workers {['AB'[h] for h in hosts]}")
        assert hosts == [1, 1, 1, 1]
        await close_rooms(cluster, rooms)
    finally:
        # Counted, not searched for: the worker may have logged "below capacity" just before
        # it went full, and a room opened before it is available again gets no agent at all.
        available_logs = logged("worker is below capacity")
        cluster.gauges.free = 8
    wait_until(
        lambda: logged("worker is below capacity") > available_logs,
        timeout=15,
        what="worker A to report room again",
        process=worker_a.process,
    )


async def test_new_rooms_keep_working_when_a_node_stops(cluster: Cluster) -> None:
    # Stop node B (its worker loses its server); node A and worker A carry on.
    cluster.nodes[1].stop()
    room = f"survivor-{uuid.uuid4().hex[:6]}"
    user = await join(cluster.nodes[0], room, "survivor")
    try:
        await user.wait_for_agent(timeout=40)
        assert host_of(cluster, room) == 0
        await user.wait_for(
            lambda: user.agent_state() == "listening" and user.agent_audio_after(0.0) is not None,
            timeout=40,
            what="the greeting",
        )
        _onset, end = await user.say(speech_wav("Is everything still working?"))
        await user.wait_for(
            lambda: user.agent_audio_after(end) is not None,
            timeout=15,
            what="the spoken answer on the surviving node",
        )
    finally:
        await user.leave()
