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

    python -m dispatcher --host 0.0.0.0 --port 8083    # LIVEKIT_* as for the worker
    # livekit.yaml:  webhook: {api_key: <LIVEKIT_API_KEY>, urls: [http://failover:8083/webhook]}
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web
from livekit import api
from livekit.protocol import models

from .log import logger
from .settings import AgentSettings

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


def http_url(url: str) -> str:
    return url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)


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


def build_app(settings: AgentSettings) -> web.Application:
    if not settings.livekit_api_key or settings.livekit_api_secret is None:
        raise SystemExit("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set")
    key, secret = settings.livekit_api_key, settings.livekit_api_secret.get_secret_value()
    app = web.Application()
    state: dict[str, Failover] = {}

    async def start(_app: web.Application) -> None:
        state["failover"] = Failover(
            api.LiveKitAPI(http_url(settings.livekit_url), key, secret),
            settings.agent_name,
            api.WebhookReceiver(api.TokenVerifier(key, secret)),
        )

    async def stop(_app: web.Application) -> None:
        await state["failover"].lkapi.aclose()

    async def webhook(request: web.Request) -> web.Response:
        return await state["failover"].handle(request)

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/", health)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dispatcher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8083)
    args = parser.parse_args(argv)
    settings = AgentSettings()
    web.run_app(
        build_app(settings),
        host=args.host,
        port=args.port,
        print=None,
        loop=asyncio.new_event_loop(),
    )


if __name__ == "__main__":
    main()
