"""The line of rooms waiting for an agent: who is dispatched, when, and in what order."""

from __future__ import annotations

from dispatcher.line import (
    Dispatch,
    DispatchAgain,
    GiveUp,
    Line,
    RoomView,
    Served,
    Tell,
)


def waiting(name: str, *dispatches: Dispatch) -> RoomView:
    return RoomView(name, people=1, agent_present=False, dispatches=dispatches)


def served(name: str, *dispatches: Dispatch) -> RoomView:
    return RoomView(name, people=1, agent_present=True, dispatches=dispatches)


def unanswered(i: str = "d1", metadata: str = '{"character": "quiz"}') -> Dispatch:
    return Dispatch(i, metadata, jobs=0)


def taken(i: str = "d1", metadata: str = '{"character": "quiz"}') -> Dispatch:
    return Dispatch(i, metadata, jobs=1)


def dispatched(actions: list[object]) -> list[str]:
    return [a.room for a in actions if isinstance(a, DispatchAgain)]


def test_a_dispatch_no_worker_took_is_made_again_with_its_metadata() -> None:
    line = Line(accept_s=2.0)
    # First seen unanswered: a worker may still be answering, so wait.
    assert dispatched(line.decide([waiting("a", unanswered())], now=0.0)) == []
    assert dispatched(line.decide([waiting("a", unanswered())], now=1.0)) == []
    actions = line.decide([waiting("a", unanswered())], now=2.0)
    again = [a for a in actions if isinstance(a, DispatchAgain)]
    assert again == [DispatchAgain("a", '{"character": "quiz"}', unanswered=("d1",))]
    assert Tell("a", 1, 2.0) in actions


def test_a_room_is_not_told_it_waits_while_its_first_dispatch_may_be_taken() -> None:
    """Every room starts with an unanswered dispatch: until a worker had `accept_s` to take
    it, the room is not in line (no "you are number 1" flash before every agent)."""
    line = Line(accept_s=1.0)
    assert line.decide([waiting("a", unanswered())], now=0.0) == []
    assert line.decide([waiting("a", unanswered())], now=0.9) == []
    assert line.decide([waiting("a", taken())], now=1.2) == []  # its agent is on the way


def test_our_own_attempt_waits_from_when_it_was_made() -> None:
    line = Line(accept_s=2.0)
    line.decide([waiting("a", unanswered())], now=0.0)
    line.decide([waiting("a", unanswered())], now=2.0)  # dispatch again
    line.created("a", "d2", now=2.0)
    assert dispatched(line.decide([waiting("a", unanswered("d2"))], now=3.9)) == []
    assert dispatched(line.decide([waiting("a", unanswered("d2"))], now=4.0)) == ["a"]


def test_a_room_whose_dispatch_a_worker_took_is_left_to_its_agent() -> None:
    line = Line(accept_s=2.0, connect_s=15.0)
    for t in (0.0, 5.0, 14.0):
        assert line.decide([waiting("a", taken())], now=t) == []
    # The agent never arrived: dispatch again.
    assert dispatched(line.decide([waiting("a", taken())], now=15.0)) == ["a"]


def test_first_come_first_served() -> None:
    line = Line(accept_s=2.0)
    line.decide([waiting("first", unanswered("d1"))], now=0.0)
    rooms = [waiting("first", unanswered("d1")), waiting("second", unanswered("d2"))]
    line.decide(rooms, now=1.0)
    # No worker: only the head of the line is tried again, and it is told its place; the
    # second room's own dispatch may still be taken (seen at 1.0), so it is not told yet.
    actions = line.decide(rooms, now=2.0)
    assert dispatched(actions) == ["first"]
    assert [(a.room, a.position) for a in actions if isinstance(a, Tell)] == [("first", 1)]
    actions = line.decide(rooms, now=3.0)
    assert [(a.room, a.position) for a in actions if isinstance(a, Tell)] == [
        ("first", 1),
        ("second", 2),
    ]
    line.created("first", "d3", now=2.0)
    rooms = [waiting("first", unanswered("d3")), waiting("second", unanswered("d2"))]
    assert dispatched(line.decide(rooms, now=3.0)) == []
    # A worker takes the head: the next room is dispatched at once.
    rooms = [waiting("first", taken("d3")), waiting("second", unanswered("d2"))]
    actions = line.decide(rooms, now=3.5)
    assert dispatched(actions) == ["second"]
    assert [(a.room, a.position) for a in actions if isinstance(a, Tell)] == [("second", 1)]


def test_an_agent_that_joins_serves_the_room() -> None:
    line = Line(accept_s=2.0)
    line.decide([waiting("a", unanswered())], now=0.0)
    actions = line.decide([served("a", taken())], now=4.0)
    assert actions == [Served("a", 4.0)]
    assert line.waiting() == 0


def test_a_room_whose_agent_dies_waits_again() -> None:
    line = Line(accept_s=2.0, connect_s=15.0)
    line.decide([served("a", taken())], now=0.0)
    # Long after the job was taken, the agent is gone and the person still there.
    assert dispatched(line.decide([waiting("a", taken())], now=60.0)) == ["a"]


def test_rooms_without_a_person_or_without_our_dispatch_do_not_wait() -> None:
    line = Line(accept_s=0.5)
    empty = RoomView("empty", people=0, agent_present=False, dispatches=(unanswered(),))
    not_ours = RoomView("other", people=1, agent_present=False, dispatches=())
    for t in (0.0, 1.0, 2.0):
        assert line.decide([empty, not_ours], now=t) == []
    assert line.waiting() == 0


def test_a_room_that_waited_too_long_is_given_up_once() -> None:
    line = Line(accept_s=1.0, give_up_s=10.0)
    line.decide([waiting("a", unanswered())], now=0.0)
    actions = line.decide([waiting("a", unanswered())], now=10.0)
    assert actions == [GiveUp("a", 10.0, ("d1",))]
    assert line.decide([waiting("a", unanswered())], now=11.0) == []
    assert line.waiting() == 0


def test_rooms_that_closed_are_forgotten() -> None:
    line = Line()
    line.decide([waiting("a", unanswered())], now=0.0)
    assert line.decide([], now=1.0) == []
    assert line.rooms == {}


def test_another_dispatchers_attempt_is_waited_for() -> None:
    # Replica B sees replica A's fresh dispatch one look after A made it: B does not add its own.
    line = Line(accept_s=2.0)
    line.decide([waiting("a", unanswered("d1"))], now=0.0)
    line.decide([waiting("a", unanswered("d1"))], now=2.0)  # B dispatches d2 ...
    line.created("a", "d2", now=2.0)
    # ... and next sees A's d3 as well, made meanwhile: both are within their window.
    rooms = [waiting("a", unanswered("d2"), unanswered("d3"))]
    assert dispatched(line.decide(rooms, now=3.0)) == []
    assert dispatched(line.decide(rooms, now=4.5)) == []
    assert dispatched(line.decide(rooms, now=5.0)) == ["a"]


def test_each_lane_keeps_its_own_order() -> None:
    """A room waiting for Moshi does not hold back the cascade rooms behind it: each lane is
    first come, first served, and each room is told its place in its own lane."""
    line = Line(accept_s=2.0, lane_of=lambda metadata: "moshi" if "moshi" in metadata else "")
    moshi = '{"character": "moshi"}'
    rooms = [
        waiting("duplex-1", unanswered("d1", moshi)),
        waiting("duplex-2", unanswered("d2", moshi)),
        waiting("cascade", unanswered("d3")),
    ]
    line.decide(rooms[:1], now=0.0)
    line.decide(rooms[:2], now=0.5)
    line.decide(rooms, now=1.0)
    actions = line.decide(rooms, now=3.0)
    # the head of each lane is tried again; the second Moshi room waits behind the first
    assert sorted(dispatched(actions)) == ["cascade", "duplex-1"]
    assert [(a.room, a.position) for a in actions if isinstance(a, Tell)] == [
        ("duplex-1", 1),
        ("duplex-2", 2),
        ("cascade", 1),
    ]


def test_a_room_keeps_the_lane_of_its_first_dispatch() -> None:
    lanes: list[str] = []

    def lane_of(metadata: str) -> str:
        lanes.append(metadata)
        return "moshi"

    line = Line(accept_s=2.0, lane_of=lane_of)
    line.decide([waiting("r", unanswered("d1", "first"))], now=0.0)
    line.created("r", "d2", now=2.0)
    line.decide([waiting("r", unanswered("d1", "first"), unanswered("d2", "first"))], now=2.0)
    assert lanes == ["first"]  # read once, when the room began to wait
