"""Whether the services a conversation needs are reachable: Kyutai STT, Kyutai TTS, the LLM.

Served by the worker as `GET /health` on AGENT_STATUS_PORT: `{stt_up, tts_up, llm_up, ok}`.
"""

from __future__ import annotations

import asyncio

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


async def serve(settings: AgentSettings) -> web.AppRunner | None:
    """Start the health view; None when AGENT_STATUS_PORT is unset."""
    if settings.status_port is None:
        return None

    async def health(_request: web.Request) -> web.Response:
        result = await check(settings)
        return web.json_response(result, status=200 if result["ok"] else 503)

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.status_port).start()
    logger.info("health view on http://%s:%d/health", settings.http_host, settings.status_port)
    return runner
