"""The dispatcher's HTTP face: livekit-server's webhooks in (each wakes the line), the line's
state and Prometheus metrics out, and a health answer for probes."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from livekit import api
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from catalog.characters import CharacterSet
from dispatcher.lanes import lane_by_character
from dispatcher.line import Line
from dispatcher.log import logger
from dispatcher.rooms import Rounds
from dispatcher.settings import DispatcherSettings

ROUNDS = web.AppKey("rounds", Rounds)
RECEIVER = web.AppKey("receiver", api.WebhookReceiver)
TASK = web.AppKey("task", asyncio.Task[None])


def build_app(settings: DispatcherSettings, characters: CharacterSet) -> web.Application:
    key, secret = settings.livekit_api_key, settings.livekit_api_secret.get_secret_value()
    app = web.Application()

    async def start(app: web.Application) -> None:
        line = Line(
            accept_s=settings.accept_s,
            connect_s=settings.connect_s,
            give_up_s=settings.give_up_s,
            lane_of=lane_by_character(characters),
        )
        rounds = Rounds(
            api.LiveKitAPI(settings.livekit_url, key, secret),  # ws:// is mapped to http:// there
            settings.agent_name,
            line,
            poll_s=settings.poll_s,
        )
        app[ROUNDS] = rounds
        app[RECEIVER] = api.WebhookReceiver(api.TokenVerifier(key, secret))
        app[TASK] = asyncio.get_running_loop().create_task(rounds.run(), name="dispatcher-rounds")
        logger.info(
            "dispatching %s on %s: a look every %.1fs, and on each webhook",
            settings.agent_name,
            settings.livekit_url,
            settings.poll_s,
        )

    async def stop(app: web.Application) -> None:
        app[TASK].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[TASK]
        await app[ROUNDS].lkapi.aclose()

    async def webhook(request: web.Request) -> web.Response:
        body = await request.text()
        try:
            event = request.app[RECEIVER].receive(body, request.headers.get("Authorization", ""))
        except Exception:
            return web.Response(status=401, text="bad webhook signature")
        if event.HasField("participant") and event.event == "participant_left":
            logger.info("room %s: %s left", event.room.name, event.participant.identity)
        request.app[ROUNDS].wake()
        return web.Response(text="ok")

    async def line(request: web.Request) -> web.Response:
        return web.json_response({"waiting": request.app[ROUNDS].line.waiting()})

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/line", line)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", health)
    return app
