"""Give a room a new agent when its worker died (crash, OOM kill, SIGKILL, lost host).

livekit-server v1.13.5 does not re-dispatch a job whose worker went away: it forgets the job
(`deregisterJob`, "TODO update dispatch state") and the room is left without an agent. A
worker that stops cleanly never needs this: SIGTERM drains (running conversations finish).

This service receives livekit-server's webhooks (`webhook.urls` in livekit.yaml). When our
agent leaves a room *without saying goodbye* (any disconnect reason but a client-initiated
leave or the room ending) and a person is still in the room, it creates a new dispatch of the
same agent with the same metadata (the character); LiveKit gives it to a worker that is not
full. The webhook is sent once, by the node that hosts the room, so one instance (or several
behind one URL) does not dispatch twice; a short memory of recent recoveries guards retries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web
from livekit import api
from livekit.protocol import models

from dispatcher.log import logger

AGENT_NAME_ATTRIBUTE = "lk.agent.name"
# Reasons an agent leaves on purpose, or with its room: nothing to recover.
CLEAN_REASONS = frozenset(
    {
        models.DisconnectReason.CLIENT_INITIATED,
        models.DisconnectReason.ROOM_DELETED,
        models.DisconnectReason.ROOM_CLOSED,
        models.DisconnectReason.PARTICIPANT_REMOVED,
        models.DisconnectReason.DUPLICATE_IDENTITY,
        models.DisconnectReason.MIGRATION,
    }
)


def agent_lost(event: api.WebhookEvent, agent_name: str) -> bool:
    """True when `event` says our agent left a room abruptly (its worker or job died)."""
    if event.event != "participant_left" or not event.HasField("participant"):
        return False
    p = event.participant
    if p.kind != models.ParticipantInfo.Kind.AGENT:
        return False
    if p.attributes.get(AGENT_NAME_ATTRIBUTE, agent_name) != agent_name:
        return False
    return p.disconnect_reason not in CLEAN_REASONS


def needs_agent(participants: list[models.ParticipantInfo], agent_name: str) -> bool:
    """A person is still in the room and none of our agents is."""
    people = [p for p in participants if p.kind == models.ParticipantInfo.Kind.STANDARD]
    ours = [
        p
        for p in participants
        if p.kind == models.ParticipantInfo.Kind.AGENT
        and p.attributes.get(AGENT_NAME_ATTRIBUTE, agent_name) == agent_name
    ]
    return bool(people) and not ours


@dataclass
class Failover:
    lkapi: api.LiveKitAPI
    agent_name: str
    receiver: api.WebhookReceiver
    memory_s: float = 30.0
    recovered: dict[str, float] = field(default_factory=dict)  # room -> monotonic time

    async def on_event(self, event: api.WebhookEvent) -> bool:
        """Re-dispatch when needed; True when a new dispatch was created."""
        if not agent_lost(event, self.agent_name):
            return False
        room = event.room.name
        now = time.monotonic()
        self.recovered = {r: t for r, t in self.recovered.items() if now - t < self.memory_s}
        if room in self.recovered:
            return False
        reason = models.DisconnectReason.Name(event.participant.disconnect_reason)
        people = await self.lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
        if not needs_agent(list(people.participants), self.agent_name):
            logger.info("agent left room %s (%s): nobody to serve", room, reason)
            return False
        dispatches = await self.lkapi.agent_dispatch.list_dispatch(room_name=room)
        metadata = next(
            (d.metadata for d in reversed(dispatches) if d.agent_name == self.agent_name), ""
        )
        self.recovered[room] = now
        await self.lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=self.agent_name, room=room, metadata=metadata)
        )
        logger.warning("agent left room %s abruptly (%s): dispatched a new one", room, reason)
        return True

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            event = self.receiver.receive(body, request.headers.get("Authorization", ""))
        except Exception:
            return web.Response(status=401, text="bad webhook signature")
        try:
            await self.on_event(event)
        except Exception:  # answer anyway: LiveKit does not need to retry our failure
            logger.exception("failover for room %s failed", event.room.name)
        return web.Response(text="ok")
