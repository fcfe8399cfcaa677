"""No room is left without an agent: the dispatcher's line against a real livekit-server.

livekit-server v1.13.5 tries a dispatch once. Here a room is created before any worker has
registered, and a room is created while the only worker (AGENT_MAX_JOBS=1) is busy: both must
get the agent once a worker can take them, with the dispatcher learning about rooms from
webhooks and from polling alone. Two dispatchers at once never put two agents in a room.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from livekit import rtc

from harness.dispatcher import start_dispatcher
from harness.inference_server import InferenceServer, start_inference_server
from harness.join_token import make_token
from harness.livekit_server import ROOT, LiveKitServer, start_livekit_server
from harness.participant import TestParticipant
from harness.ports import free_port
from harness.procs import ManagedProcess, wait_until
from harness.speech import speech_wav
from harness.stub_llm import Reply, StubLLM
from harness.worker import WorkerHandle, start_worker, tiny_stack_env

pytestmark = pytest.mark.e2e

AGENT = "dispatch-agent"


@dataclass
class Stack:
    livekit: LiveKitServer
    dispatchers: list[ManagedProcess]
    env: dict[str, str]
    log_dir: Path
    node: InferenceServer
    workers: list[WorkerHandle] = field(default_factory=list)

    def start_worker(self, name: str, **extra: str) -> WorkerHandle:
        worker = start_worker(
            self.livekit,
            self.log_dir,
            name=name,
            agent_name=AGENT,
            env={**self.env, **extra},
        )
        self.workers.append(worker)
        return worker


@pytest.fixture(scope="module")
def small_node(artifacts_dir: Path) -> Iterator[InferenceServer]:
    """A node with slots for 4 conversations: 4 STT slots, 8 TTS slots (a conversation holds a
    pre-connected TTS socket beside the one speaking)."""
    with start_inference_server(
        ROOT / ".cache" / "kyutai-tiny",
        batch_size=4,
        tts_batch_size=8,
        log_dir=artifacts_dir / "logs",
    ) as server:
        yield server


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    artifacts_dir: Path,
    small_node: InferenceServer,
    stub_llm_server: StubLLM,
) -> Iterator[Stack]:
    """A livekit-server of its own, and a dispatcher that hears its webhooks (and looks every
    30 s) or only looks (every 2 s, the default): `request.param`, "polling" unless given."""
    mode = getattr(request, "param", "polling")
    log_dir = artifacts_dir / "logs"
    port = free_port()
    webhooks = mode == "webhooks"
    livekit = start_livekit_server(
        log_dir,
        name=f"livekit-dispatch-{mode}",
        webhook_url=f"http://127.0.0.1:{port}/webhook" if webhooks else None,
    )
    env = tiny_stack_env(small_node.url, small_node.api_key, stub_llm_server.base_url)
    stack = Stack(livekit, [], env, log_dir, small_node)
    try:
        stack.dispatchers.append(
            start_dispatcher(
                livekit,
                log_dir,
                f"dispatcher-{mode}",
                port,
                agent_name=AGENT,
                poll_s=30.0 if webhooks else 2.0,
            )
        )
        yield stack
    finally:
        for worker in stack.workers:
            worker.stop()
        for d in stack.dispatchers:
            d.stop()
        livekit.stop()


BOTH = pytest.mark.parametrize("stack", ["webhooks", "polling"], indirect=True)


@dataclass
class User:
    participant: TestParticipant
    line: list[dict[str, object]] = field(default_factory=list)
    most_agents: int = 0  # agents of ours in the room at once, at most

    def agents(self) -> list[rtc.RemoteParticipant]:
        return self.participant.agents()


@pytest.fixture
async def join(stack: Stack) -> AsyncIterator[Callable[..., object]]:
    users: list[User] = []

    async def factory(room: str, identity: str = "user", character: str = "watercooler") -> User:
        token = make_token(
            stack.livekit.api_key,
            stack.livekit.api_secret,
            room=room,
            identity=identity,
            dispatch_agent=AGENT,
            dispatch_metadata=json.dumps({"character": character}),
        )
        participant = TestParticipant(identity=identity)
        user = User(participant)

        def on_data(packet: rtc.DataPacket) -> None:
            if packet.topic == "kyutai.line":
                user.line.append(json.loads(packet.data))
                participant._notify()

        def on_joined(_p: rtc.RemoteParticipant) -> None:
            user.most_agents = max(user.most_agents, len(participant.agents()))

        participant.room.on("data_received", on_data)
        participant.room.on("participant_connected", on_joined)
        await participant.join(stack.livekit.url, token)
        user.most_agents = len(participant.agents())
        users.append(user)
        return user

    yield factory
    for user in users:
        if user.participant.room.isconnected():
            await user.participant.leave()


def room(tag: str) -> str:
    return f"{tag}-{time.monotonic_ns() % 10**9}"


@BOTH
async def test_a_room_created_before_the_worker_registers_gets_the_agent(
    stack: Stack, join: Callable[..., object], stub_llm: StubLLM
) -> None:
    user: User = await join(room("early"))  # type: ignore[misc]
    # Nobody can take it yet: the dispatcher tells the room it waits.
    await user.participant.wait_for(
        lambda: any(m.get("state") == "waiting" for m in user.line),
        timeout=15,
        what="word that the room waits in line",
    )
    assert not user.agents()
    stack.start_worker("worker-dispatch-early", AGENT_MAX_JOBS="2")
    registered = time.monotonic()
    await user.participant.wait_for(lambda: bool(user.agents()), timeout=15, what="the agent")
    after = time.monotonic() - registered
    print(f"agent joined {after:.2f}s after the worker registered")
    await user.participant.wait_for_greeting(agent_timeout=15)
    assert user.most_agents == 1


@BOTH
async def test_a_room_waits_for_a_busy_worker_and_is_served_when_it_frees(
    stack: Stack, join: Callable[..., object], stub_llm: StubLLM
) -> None:
    stack.start_worker("worker-dispatch-one", AGENT_MAX_JOBS="1")
    stub_llm.push(Reply(text="Hello there."), Reply(text="Thanks for the chat, goodbye!"))
    first: User = await join(room("first"), "first")  # type: ignore[misc]
    await first.participant.wait_for_greeting(agent_timeout=15)
    second: User = await join(room("second"), "second")  # type: ignore[misc]
    await second.participant.wait_for(
        lambda: any(m.get("state") == "waiting" and m.get("position") == 1 for m in second.line),
        timeout=15,
        what="word that the room is first in line",
    )
    assert not second.agents()
    # The first conversation ends with the agent's goodbye: it leaves the first room (whose
    # person stays), and the second room, next in line, gets the agent.
    await first.participant.say(speech_wav("That is all I wanted to know."))
    await first.participant.wait_for(
        lambda: first.participant.agent_left, timeout=30, what="the agent to say goodbye and leave"
    )
    ended = time.monotonic()
    await second.participant.wait_for(lambda: bool(second.agents()), timeout=20, what="the agent")
    print(f"second room got the agent {time.monotonic() - ended:.2f}s after the first ended")
    await second.participant.wait_for_greeting(agent_timeout=15)
    assert second.most_agents == 1
    # A conversation that ended on purpose is not given another agent.
    assert not first.agents() and first.most_agents == 1
    assert f"{first.participant.room.name} has no agent" not in stack.dispatchers[0].log_tail(
        1_000_000
    )


@BOTH
async def test_two_dispatchers_and_a_worker_restart_never_put_two_agents_in_a_room(
    stack: Stack, join: Callable[..., object], stub_llm: StubLLM, artifacts_dir: Path
) -> None:
    port = free_port()
    stack.dispatchers.append(
        start_dispatcher(
            stack.livekit,
            artifacts_dir / "logs",
            "dispatcher-replica",
            port,
            agent_name=AGENT,
            poll_s=1.0,
        )
    )
    worker = stack.start_worker("worker-dispatch-restart", AGENT_MAX_JOBS="2")
    users: list[User] = [await join(room(f"pair{i}"), f"user{i}") for i in range(3)]  # type: ignore[misc]
    # Two rooms get the agent, the third waits; then the worker is killed and started again.
    await users[0].participant.wait_for(lambda: bool(users[0].agents()), timeout=20, what="agent 1")
    await users[1].participant.wait_for(lambda: bool(users[1].agents()), timeout=20, what="agent 2")
    worker.process.stop(sig=signal.SIGKILL)
    stack.workers.remove(worker)
    stack.start_worker("worker-dispatch-restarted", AGENT_MAX_JOBS="3")
    for user in users:
        await user.participant.wait_for(
            lambda user=user: bool(user.agents()), timeout=30, what="an agent after the restart"
        )
    for user in users:
        assert user.most_agents == 1, f"{user.participant.identity} saw {user.most_agents} agents"


def open_slots(node: InferenceServer) -> dict[str, int]:
    from agent.ops.capacity import fetch_slots

    slots = fetch_slots(f"{node.http_url}/metrics", 5.0) or {}
    return {engine: s.total - s.free for engine, s in slots.items()}


async def test_an_agent_dispatched_into_an_empty_room_holds_no_slot_until_a_person_joins(
    stack: Stack, join: Callable[..., object], stub_llm: StubLLM
) -> None:
    from livekit import api

    stack.start_worker("worker-dispatch-empty", AGENT_EMPTY_ROOM_S="60")
    name = room("empty")
    before = open_slots(stack.node)
    async with api.LiveKitAPI(
        stack.livekit.http_url, stack.livekit.api_key, stack.livekit.api_secret
    ) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=name))
        await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=AGENT, room=name)
        )

        async def agent_in_room() -> bool:
            people = await lkapi.room.list_participants(api.ListParticipantsRequest(room=name))
            return any(p.kind == p.Kind.AGENT for p in people.participants)

        deadline = time.monotonic() + 20
        while not await agent_in_room():
            assert time.monotonic() < deadline, "the agent never joined the empty room"
            await asyncio.sleep(0.2)  # polling the server's API, not synchronisation
    worker = stack.workers[-1]
    wait_until(
        lambda: "is empty: waiting up to" in worker.process.log_tail(400_000),
        timeout=10,
        what="the agent to wait for a person",
        process=worker.process,
    )
    assert open_slots(stack.node) == before, "an agent in an empty room opened a model slot"
    user: User = await join(name)  # type: ignore[misc]
    await user.participant.wait_for_greeting(agent_timeout=15)
    assert open_slots(stack.node)["stt"] == before["stt"] + 1
    assert user.most_agents == 1


async def test_an_agent_leaves_an_empty_room_nobody_comes_to(stack: Stack) -> None:
    from livekit import api

    worker = stack.start_worker("worker-dispatch-nobody", AGENT_EMPTY_ROOM_S="2")
    name = room("nobody")
    async with api.LiveKitAPI(
        stack.livekit.http_url, stack.livekit.api_key, stack.livekit.api_secret
    ) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=name, empty_timeout=60))
        await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=AGENT, room=name)
        )
    wait_until(
        lambda: f"room {name}: nobody came within 2s, leaving" in worker.process.log_tail(400_000),
        timeout=30,
        what="the agent to give up on the empty room",
        process=worker.process,
    )


async def test_a_room_that_waits_too_long_is_told_and_given_up(
    stack: Stack, join: Callable[..., object], artifacts_dir: Path
) -> None:
    from livekit import api

    impatient = start_dispatcher(
        stack.livekit,
        artifacts_dir / "logs",
        "dispatcher-impatient",
        free_port(),
        agent_name=AGENT,
        poll_s=1.0,
        DISPATCHER_GIVE_UP_S="3",
    )
    stack.dispatchers.append(impatient)
    user: User = await join(room("nobody-free"))  # type: ignore[misc]  # no worker at all
    await user.participant.wait_for(
        lambda: any(m.get("state") == "given_up" for m in user.line),
        timeout=20,
        what="word that no agent will come",
    )
    async with api.LiveKitAPI(
        stack.livekit.http_url, stack.livekit.api_key, stack.livekit.api_secret
    ) as lkapi:
        left = await lkapi.agent_dispatch.list_dispatch(room_name=user.participant.room.name)
    assert [d for d in left if d.agent_name == AGENT] == []  # no agent turns up later
    assert "giving up" in impatient.log_tail(100_000)


async def test_a_burst_of_eight_rooms_on_four_slots(
    stack: Stack, join: Callable[..., object], stub_llm: StubLLM
) -> None:
    """Exactly four agents speak; the other four rooms wait, told their place, and are served in
    that order as conversations end. No agent sits in a room without speaking."""
    stack.start_worker("worker-dispatch-burst")  # AGENT_MAX_JOBS 16: the 4 STT slots bound it
    users: list[User] = list(
        await asyncio.gather(*(join(room(f"burst{i}"), f"burst{i}") for i in range(8)))  # type: ignore[arg-type]
    )

    def greeted(u: User) -> bool:
        return bool(u.agents()) and u.participant.agent_audio_after(0.0) is not None

    def settled() -> bool:
        served = [u for u in users if u.agents()]
        places = sorted(int(u.line[-1]["position"]) for u in users if not u.agents() and u.line)  # type: ignore[call-overload]
        return len(served) == 4 and all(greeted(u) for u in served) and places == [1, 2, 3, 4]

    await users[0].participant.wait_for(settled, timeout=60, what="4 greeted rooms, 4 waiting")
    waiting = sorted(
        (u for u in users if not u.agents()),
        key=lambda u: int(u.line[-1]["position"]),  # type: ignore[arg-type]
    )
    served_order: list[str] = []
    for _ in range(4):
        ending = next(u for u in users if u.agents() and u.participant.room.isconnected())
        await ending.participant.leave()
        users.remove(ending)
        await waiting[0].participant.wait_for(
            lambda: any(u.agents() for u in waiting if u.participant.identity not in served_order),
            timeout=30,
            what="the next room in line to get an agent",
        )
        nxt = next(u for u in waiting if u.agents() and u.participant.identity not in served_order)
        served_order.append(nxt.participant.identity)
        await nxt.participant.wait_for(
            lambda nxt=nxt: greeted(nxt), timeout=20, what="its greeting"
        )
    assert served_order == [u.participant.identity for u in waiting]
    for u in users:
        assert u.most_agents == 1


@pytest.fixture(scope="module")
def moshi_node(artifacts_dir: Path) -> Iterator[InferenceServer]:
    """STT and TTS for 4 conversations, and one Moshi slot (the tiny keyed Moshi)."""
    with start_inference_server(
        ROOT / ".cache" / "kyutai-tiny",
        batch_size=4,
        tts_batch_size=8,
        extra_args=["--engines", "stt,tts,moshi", "--moshi-batch-size", "1"],
        log_dir=artifacts_dir / "logs",
    ) as server:
        yield server


async def test_a_moshi_room_waits_in_line_while_moshi_is_full_and_cascade_rooms_do_not(
    stack: Stack, join: Callable[..., object], moshi_node: InferenceServer, stub_llm: StubLLM
) -> None:
    """Moshi's slots are not in the worker's load: a duplex request is declined while Moshi is
    full (the room waits in line, told its place, and gets Moshi when the slot frees), and a
    cascade room is served meanwhile; a cascade room in line behind the Moshi room (the worker
    was full) is served as soon as a conversation slot frees, while Moshi is still full."""
    worker = stack.start_worker(
        "worker-dispatch-moshi",
        AGENT_MAX_JOBS="2",
        KYUTAI_STT_URL=moshi_node.url,
        KYUTAI_TTS_URL=moshi_node.url,
        KYUTAI_MOSHI_URL=moshi_node.url,
        KYUTAI_API_KEY=moshi_node.api_key,
    )
    first: User = await join(room("moshi-first"), "first", "moshi")  # type: ignore[misc]
    await first.participant.publish_microphone()
    await first.participant.wait_for(
        lambda: first.participant.agent_audio_after(0.0) is not None,
        timeout=30,
        what="Moshi's greeting in the first room",
    )
    second: User = await join(room("moshi-second"), "second", "moshi")  # type: ignore[misc]
    await second.participant.publish_microphone()
    await second.participant.wait_for(
        lambda: any(m.get("state") == "waiting" for m in second.line),
        timeout=20,
        what="word that the second Moshi room waits in line",
    )
    assert not second.agents()
    await second.participant.wait_for(
        lambda: "wants Moshi, which has no free slot" in worker.process.log_tail(1_000_000),
        timeout=10,
        what="the worker's word that it declined the Moshi room",
    )
    # Moshi being full does not make the worker full: a cascade room gets its agent.
    third: User = await join(room("cascade"), "third")  # type: ignore[misc]
    await third.participant.wait_for_greeting(agent_timeout=15)
    assert not second.agents()
    # Two conversations fill the worker: a fourth room (cascade) waits in line behind the
    # second, first in a lane of its own (what it waits for is not a Moshi slot).
    fourth: User = await join(room("cascade-later"), "fourth")  # type: ignore[misc]
    await fourth.participant.wait_for(
        lambda: any(m.get("state") == "waiting" for m in fourth.line),
        timeout=20,
        what="word that the cascade room waits in line",
    )
    assert [m.get("position") for m in fourth.line if m.get("state") == "waiting"][-1] == 1
    assert not fourth.agents()
    # The cascade conversation ends: the fourth room gets its agent while Moshi is still
    # full and the Moshi room stays in line (it does not hold the cascade lane back).
    await third.participant.leave()
    await fourth.participant.wait_for_greeting(agent_timeout=30)
    assert not second.agents()
    # The first conversation ends: its Moshi slot frees, and the room in line gets Moshi.
    await first.participant.leave()
    freed = time.monotonic()
    await second.participant.wait_for(lambda: bool(second.agents()), timeout=30, what="the agent")
    await second.participant.wait_for(
        lambda: second.participant.agent_audio_after(freed) is not None,
        timeout=30,
        what="Moshi's greeting in the second room",
    )
    print(f"the second room heard Moshi {time.monotonic() - freed:.2f}s after the first left")
    assert second.most_agents == 1
    assert "Moshi is unavailable" not in worker.process.log_tail(1_000_000)
