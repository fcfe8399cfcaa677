"""Whether the services a conversation needs are reachable: Kyutai STT, Kyutai TTS, the LLM.

Served by the worker on AGENT_STATUS_PORT: `GET /health` → `{stt_up, tts_up, llm_up, ok}`, and
`GET /ready` → the same plus `registered` (the worker is registered with LiveKit, so rooms can
be given to it): 200 only when all hold. The framework's own `GET /` on AGENT_HTTP_PORT answers
as soon as the process runs, seconds before the worker can take a room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from aiohttp import web

from agent.llm_client import normalize_base_url
from agent.log import logger
from agent.ops.urls import http_endpoint
from agent.settings import AgentSettings

PROBE_TIMEOUT_S = 2.0


async def _probe(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> bool:
    try:
        async with http.get(url, headers=headers) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False


async def check(settings: AgentSettings) -> dict[str, bool]:
    llm_headers = {}
    if settings.llm_api_key:
        llm_headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        stt, tts, llm = await asyncio.gather(
            _any_up(http, settings.stt_urls),
            _any_up(http, settings.tts_urls),
            _probe(http, f"{normalize_base_url(settings.llm_url)}/models", llm_headers),
        )
    return {"stt_up": stt, "tts_up": tts, "llm_up": llm, "ok": stt and tts and llm}


async def _any_up(http: aiohttp.ClientSession, urls: list[str]) -> bool:
    results = await asyncio.gather(
        *(_probe(http, http_endpoint(u, "/api/build_info"), {}) for u in urls)
    )
    return any(results)


async def serve(
    settings: AgentSettings, registered: Callable[[], bool] = lambda: True
) -> web.AppRunner | None:
    """Start the health view; None when AGENT_STATUS_PORT is unset."""
    if settings.status_port is None:
        return None

    async def health(_request: web.Request) -> web.Response:
        result = await check(settings)
        return web.json_response(result, status=200 if result["ok"] else 503)

    async def ready(_request: web.Request) -> web.Response:
        result = {"registered": registered(), **(await check(settings))}
        result["ok"] = bool(result["ok"] and result["registered"])
        return web.json_response(result, status=200 if result["ok"] else 503)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.status_port).start()
    logger.info("health view on http://%s:%d/health", settings.http_host, settings.status_port)
    return runner
