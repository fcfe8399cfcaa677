"""The dispatcher's HTTP face: livekit-server's webhooks in, a health answer for probes."""

from __future__ import annotations

from aiohttp import web
from livekit import api

from dispatcher.failover import Failover
from dispatcher.settings import DispatcherSettings

FAILOVER = web.AppKey("failover", Failover)


def build_app(settings: DispatcherSettings) -> web.Application:
    key, secret = settings.livekit_api_key, settings.livekit_api_secret.get_secret_value()
    app = web.Application()

    async def start(app: web.Application) -> None:
        app[FAILOVER] = Failover(
            api.LiveKitAPI(settings.livekit_url, key, secret),  # ws:// is mapped to http:// there
            settings.agent_name,
            api.WebhookReceiver(api.TokenVerifier(key, secret)),
        )

    async def stop(app: web.Application) -> None:
        await app[FAILOVER].lkapi.aclose()

    async def webhook(request: web.Request) -> web.Response:
        return await request.app[FAILOVER].handle(request)

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/", health)
    return app
