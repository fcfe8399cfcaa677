"""The line of rooms waiting for an agent: pure decisions, no I/O.

livekit-server v1.13.5 tries a dispatch once: when no worker is registered, or every worker
is full, the dispatch is kept but no job is ever launched for it, and a room whose agent died
is forgotten too. The dispatcher therefore owns every dispatch of our agent: a room with a
person in it, a dispatch of our agent and no agent of ours waits in this line, first come
first served, and is dispatched again (with its first dispatch's metadata) until a worker
takes it.

Each dispatch is judged by what the server lists: no job `accept_s` after it was first seen
means no worker took it; a job means a worker did, and its agent has `connect_s` to join.
A room is dispatched again only when nothing of it is pending and every room ahead of it in
its lane has a worker (strict order within a lane). Rooms wait in lanes by what their agent
needs (`lane_of` their first dispatch's metadata: a Moshi slot or the cascade's STT and TTS),
so a room held back by a full Moshi does not hold back the cascade rooms behind it. Each room
is told its place in its own lane, once its first dispatch had `accept_s` to be taken.
Several dispatchers may watch the same server: one sees the others' attempts in the list
(later than they were made, so their own window lasts longer and the maker retries first),
and an agent that finds another of ours in its room leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ONE_LANE = ""


def one_lane(_metadata: str) -> str:
    """Every room in one line (no catalogue to tell the rooms' needs apart)."""
    return ONE_LANE


@dataclass(frozen=True)
class Dispatch:
    """One dispatch of our agent in a room, as the server lists it."""

    id: str
    metadata: str
    jobs: int  # jobs launched for it: a worker took it


@dataclass(frozen=True)
class RoomView:
    """What the dispatcher saw of one room."""

    name: str
    people: int  # standard (non-agent) participants
    agent_present: bool  # one of our agents is in the room
    dispatches: tuple[Dispatch, ...] = ()  # our agent's dispatches only


@dataclass(frozen=True)
class DispatchAgain:
    room: str
    metadata: str
    unanswered: tuple[str, ...]  # earlier attempts no worker took: deleted


@dataclass(frozen=True)
class Tell:
    """Let the room know where it stands (the widget shows it)."""

    room: str
    position: int  # 1 = next
    waited_s: float


@dataclass(frozen=True)
class GiveUp:
    room: str
    waited_s: float
    dispatches: tuple[str, ...]  # ours, deleted: no agent turns up later by surprise


@dataclass(frozen=True)
class Served:
    room: str
    waited_s: float


Action = DispatchAgain | Tell | GiveUp | Served


@dataclass
class _Room:
    seen: dict[str, float] = field(default_factory=dict)  # dispatch id -> first seen/created
    taken: dict[str, float] = field(default_factory=dict)  # dispatch id -> first seen with a job
    waiting_since: float | None = None
    metadata: str = ""
    lane: str = ONE_LANE
    given_up: bool = False


@dataclass
class Line:
    accept_s: float = 1.0
    connect_s: float = 15.0
    give_up_s: float = 300.0
    lane_of: Callable[[str], str] = one_lane  # a room's lane, from its dispatch metadata
    rooms: dict[str, _Room] = field(default_factory=dict)

    def created(self, room: str, dispatch_id: str, now: float) -> None:
        """Our own attempt: its window starts when it was made, not when it is next listed."""
        if room in self.rooms:
            self.rooms[room].seen.setdefault(dispatch_id, now)

    def waiting(self) -> int:
        return sum(1 for r in self.rooms.values() if r.waiting_since is not None and not r.given_up)

    def decide(self, views: list[RoomView], now: float) -> list[Action]:
        """What to do, given every room seen this round (rooms not listed are gone)."""
        listed = {v.name for v in views}
        for gone in [name for name in self.rooms if name not in listed]:
            del self.rooms[gone]
        actions: list[Action] = []
        for view in views:
            actions.extend(self._observe(view, now))
        views_by_name = {v.name: v for v in views}
        line = sorted(
            (
                (room.waiting_since, name)
                for name, room in self.rooms.items()
                if room.waiting_since is not None and not room.given_up
            ),
        )
        positions: dict[str, int] = {}
        blocked: set[str] = set()  # strict order: nothing passes a room still unanswered
        for since, name in line:
            room, view = self.rooms[name], views_by_name[name]
            if any(now - t < self.connect_s for t in room.taken.values()):
                continue  # a worker took it: its agent is on the way
            waited = now - since
            if waited >= self.give_up_s:
                room.given_up = True
                actions.append(GiveUp(name, waited, tuple(d.id for d in view.dispatches)))
                continue
            position = positions[room.lane] = positions.get(room.lane, 0) + 1
            if waited >= self.accept_s:
                # (not before: its first dispatch may yet be taken, and a room whose agent is
                # on its way would be told it waits in line)
                actions.append(Tell(name, position, waited))
            if room.lane in blocked:
                continue
            blocked.add(room.lane)
            pending = any(
                d.jobs == 0 and now - room.seen[d.id] < self.accept_s for d in view.dispatches
            )
            if not pending:
                unanswered = tuple(d.id for d in view.dispatches if d.jobs == 0)
                actions.append(DispatchAgain(name, room.metadata, unanswered))
        return actions

    def _observe(self, view: RoomView, now: float) -> list[Action]:
        room = self.rooms.setdefault(view.name, _Room())
        ids = {d.id for d in view.dispatches}
        room.seen = {i: t for i, t in room.seen.items() if i in ids}
        room.taken = {i: t for i, t in room.taken.items() if i in ids}
        for d in view.dispatches:
            room.seen.setdefault(d.id, now)
            if d.jobs and d.id not in room.taken:
                room.taken[d.id] = now
        if view.agent_present or view.people == 0 or not view.dispatches:
            # Served; or nobody waits; or the room does not want our agent (a goodbye or a
            # give-up deletes its dispatches).
            since, given_up = room.waiting_since, room.given_up
            room.waiting_since, room.given_up = None, False
            if view.agent_present and since is not None and not given_up:
                return [Served(view.name, now - since)]
            return []
        if room.waiting_since is None:
            room.waiting_since = now
            # The oldest dispatch carries what the person asked for (the character).
            first = min(view.dispatches, key=lambda d: room.seen[d.id])
            room.metadata = first.metadata
            room.lane = self.lane_of(first.metadata)
        return []
