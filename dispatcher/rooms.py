"""The dispatcher's rounds: look at the rooms on the LiveKit server, let the line decide, act.

A round runs every `poll_s`, and at once when a webhook says something happened in a room;
after a new dispatch a quick follow-up round sees whether a worker took it, so a line of
rooms moves as fast as workers accept them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit import api
from livekit.protocol import models

from dispatcher import metrics
from dispatcher.line import Dispatch, DispatchAgain, GiveUp, Line, RoomView, Served, Tell
from dispatcher.log import logger

AGENT_NAME_ATTRIBUTE = "lk.agent.name"
# Set by our agent when the dispatch metadata had problems (agent/ops/dispatch.py).
WARNING_ATTRIBUTE = "kyutai.dispatch_warning"
# Data messages to the room about its place in the line (the widget shows them).
LINE_TOPIC = "kyutai.line"
# Someone an agent can talk to: a browser or app, or a phone caller.
PEOPLE = (models.ParticipantInfo.Kind.STANDARD, models.ParticipantInfo.Kind.SIP)
TELL_EVERY_S = 3.0  # a late joiner learns its place within this; a change is sent at once
FOLLOW_UP_S = 0.3  # after a dispatch: did a worker take it?
WAITING_POLL_S = 0.5  # while rooms wait, workers may free up (or register) at any moment


def is_our_agent(p: models.ParticipantInfo, agent_name: str) -> bool:
    return (
        p.kind == models.ParticipantInfo.Kind.AGENT
        and p.attributes.get(AGENT_NAME_ATTRIBUTE, agent_name) == agent_name
    )


def room_view(
    name: str,
    participants: list[models.ParticipantInfo],
    dispatches: list[api.AgentDispatch],
    agent_name: str,
) -> RoomView:
    return RoomView(
        name=name,
        people=sum(1 for p in participants if p.kind in PEOPLE),
        agent_present=any(is_our_agent(p, agent_name) for p in participants),
        dispatches=tuple(
            Dispatch(d.id, d.metadata, len(d.state.jobs))
            for d in dispatches
            if d.agent_name == agent_name
        ),
    )


def line_message(state: str, **fields: float | int) -> bytes:
    return json.dumps({"state": state, **fields}).encode()


@dataclass
class Rounds:
    lkapi: api.LiveKitAPI
    agent_name: str
    line: Line
    poll_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _told: dict[str, tuple[int, float]] = field(default_factory=dict)  # room -> (position, at)
    _warned: set[str] = field(default_factory=set)  # rooms whose agent's warning was logged

    def wake(self) -> None:
        """Something happened (a webhook): run a round now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            quick = False
            try:
                quick = await self.round()
            except Exception:  # a server hiccup must not stop the line: next round retries
                logger.exception("dispatcher round failed")
            pause = FOLLOW_UP_S if quick else self.poll_s
            if self.line.waiting():
                pause = min(pause, WAITING_POLL_S)
            try:
                await asyncio.wait_for(self._wake.wait(), pause)
            except TimeoutError:
                pass

    async def observe(self) -> list[RoomView]:
        rooms = (await self.lkapi.room.list_rooms(api.ListRoomsRequest())).rooms
        views = []
        for room in rooms:
            # (The room list's participant count lags behind joins: ask each room.)
            people = list(
                (
                    await self.lkapi.room.list_participants(
                        api.ListParticipantsRequest(room=room.name)
                    )
                ).participants
            )
            if not people:
                views.append(RoomView(room.name, 0, False))
                continue
            dispatches = await self.lkapi.agent_dispatch.list_dispatch(room_name=room.name)
            views.append(room_view(room.name, people, dispatches, self.agent_name))
            self._log_warnings(room.name, people)
        self._warned &= {v.name for v in views}
        return views

    def _log_warnings(self, room: str, people: list[models.ParticipantInfo]) -> None:
        if room in self._warned:
            return
        for p in people:
            problem = (
                p.attributes.get(WARNING_ATTRIBUTE) if is_our_agent(p, self.agent_name) else None
            )
            if problem:
                self._warned.add(room)
                logger.warning(
                    "room %s: the agent replaced bad dispatch metadata: %s", room, problem
                )

    async def round(self) -> bool:
        """One look and the actions it calls for; True when a follow-up should come soon."""
        views = await self.observe()
        now = self.clock()
        actions = self.line.decide(views, now)
        metrics.WAITING.set(self.line.waiting())
        quick = False
        for action in actions:
            try:
                if isinstance(action, DispatchAgain):
                    await self._dispatch(action, now)
                    quick = True
                elif isinstance(action, Tell):
                    await self._tell(action, now)
                elif isinstance(action, GiveUp):
                    await self._give_up(action)
                elif isinstance(action, Served):
                    self._told.pop(action.room, None)
                    metrics.TIME_TO_AGENT.observe(action.waited_s)
                    logger.info(
                        "room %s: agent joined after %.1fs in line", action.room, action.waited_s
                    )
            except api.TwirpError as exc:  # the room may have closed meanwhile
                logger.warning("room %s: %s failed: %s", action.room, type(action).__name__, exc)
        for room in [r for r in self._told if r not in self.line.rooms]:
            del self._told[room]
        return quick

    async def _dispatch(self, action: DispatchAgain, now: float) -> None:
        for dispatch_id in action.unanswered:
            try:
                await self.lkapi.agent_dispatch.delete_dispatch(dispatch_id, action.room)
            except api.TwirpError:
                pass  # already gone
        created = await self.lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                agent_name=self.agent_name, room=action.room, metadata=action.metadata
            )
        )
        self.line.created(action.room, created.id, now)
        metrics.DISPATCHES.inc()
        logger.info("room %s has no agent: dispatched a new one (%s)", action.room, created.id)

    async def _tell(self, action: Tell, now: float) -> None:
        last = self._told.get(action.room)
        if last is not None and last[0] == action.position and now - last[1] < TELL_EVERY_S:
            return
        if last is None or last[0] != action.position:
            logger.info(
                "room %s: waiting for an agent, %d in line (%.1fs)",
                action.room,
                action.position,
                action.waited_s,
            )
        self._told[action.room] = (action.position, now)
        await self._send(
            action.room,
            line_message("waiting", position=action.position, waited_s=round(action.waited_s, 1)),
        )

    async def _give_up(self, action: GiveUp) -> None:
        metrics.GIVEN_UP.inc()
        logger.warning(
            "room %s: no agent after %.0fs in line, giving up", action.room, action.waited_s
        )
        for dispatch_id in action.dispatches:  # first: once told, no agent turns up
            try:
                await self.lkapi.agent_dispatch.delete_dispatch(dispatch_id, action.room)
            except api.TwirpError:
                pass
        await self._send(action.room, line_message("given_up", waited_s=round(action.waited_s)))

    async def _send(self, room: str, data: bytes) -> None:
        await self.lkapi.room.send_data(
            api.SendDataRequest(
                room=room, data=data, kind=models.DataPacket.Kind.RELIABLE, topic=LINE_TOPIC
            )
        )
