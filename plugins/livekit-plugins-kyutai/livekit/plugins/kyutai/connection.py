"""Opening Kyutai websockets: URL building, auth, capacity failover, error mapping.

A socket is handed out only after the server's ``Ready`` (a batch slot is ours). A server that
answers "no free channels" is skipped for the next URL in the list; the errors raised are the
framework's API errors so that its retry logic applies.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError, utils

from . import protocol
from .log import logger
from .models import DEFAULT_API_KEY

API_KEY_HEADER = "kyutai-api-key"
API_KEY_ENV = "KYUTAI_API_KEY"

# Keep-alive: the server pings every 10 s and drops a client after ~20 s without pongs; aiohttp
# answers pings while a task is reading, and sends its own to notice a dead server sooner.
HEARTBEAT_S = 10.0


class HttpSessions:
    """The aiohttp session a plugin's sockets use: the one given, else the job's shared one,
    else (scripts, tests: outside a job) one of its own, closed by `aclose()`."""

    def __init__(self, given: aiohttp.ClientSession | None) -> None:
        self._given = given
        self._own: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._given is not None:
            return self._given
        try:
            return utils.http_context.http_session()
        except RuntimeError:
            if self._own is None or self._own.closed:
                self._own = aiohttp.ClientSession()
            return self._own

    async def aclose(self) -> None:
        if self._own is not None:
            await self._own.close()
            self._own = None


class AtCapacityError(APIStatusError):
    """Every server answered "no free channels"."""

    def __init__(self, urls: Sequence[str]) -> None:
        super().__init__(
            f"all Kyutai servers are at capacity (no free channels): {', '.join(urls)}",
            status_code=503,
            retryable=True,
        )


def resolve_api_key(api_key: str | None) -> str:
    if api_key:
        return api_key
    return os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY


def resolve_urls(urls: str | Sequence[str] | None, env: str, default: str) -> list[str]:
    """``urls`` may be one URL, a list, or None (then the env variable, comma separated)."""
    if urls is None:
        raw = os.environ.get(env) or default
        out = [u.strip() for u in raw.split(",") if u.strip()]
    elif isinstance(urls, str):
        out = [u.strip() for u in urls.split(",") if u.strip()]
    else:
        out = [u.strip() for u in urls if u.strip()]
    if not out:
        raise ValueError(f"no Kyutai server URL given (argument or ${env})")
    for u in out:
        if urlsplit(u).scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"not a websocket URL: {u!r}")
    return out


def endpoint(url: str, route: str, params: Mapping[str, str] | None = None) -> str:
    """Append ``route`` when the URL has no path; http(s) becomes ws(s)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else route
    query = parts.query
    if params:
        extra = urlencode(params)
        query = f"{query}&{extra}" if query else extra
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def redact(url: str) -> str:
    """The URL for logs: without the query, which may carry ``auth_id``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass
class Connected:
    ws: aiohttp.ClientWebSocketResponse
    url: str


async def read_message(ws: aiohttp.ClientWebSocketResponse) -> protocol.Message | None:
    """Next protocol message; None when the socket closed. Text frames are ignored."""
    while True:
        msg = await ws.receive()
        if msg.type == aiohttp.WSMsgType.BINARY:
            return protocol.decode(msg.data)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ):
            return None
        logger.debug("ignoring websocket frame of type %s", msg.type)


async def _open_one(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str],
    ready_timeout: float,
) -> Connected | protocol.Error:
    """Open one socket and wait for Ready. Returns the server's Error (e.g. at capacity)."""
    ws = await session.ws_connect(
        url,
        headers=dict(headers),
        heartbeat=HEARTBEAT_S,
        timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
        max_msg_size=0,
    )
    try:
        first = await asyncio.wait_for(read_message(ws), ready_timeout)
    except BaseException:
        await ws.close()
        raise
    if isinstance(first, protocol.Ready):
        return Connected(ws=ws, url=url)
    await ws.close()
    if isinstance(first, protocol.Error):
        return first
    if first is None:
        raise APIConnectionError(f"Kyutai server {redact(url)} closed before Ready")
    raise APIConnectionError(f"Kyutai server {redact(url)} sent {first!r} before Ready")


async def connect(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    *,
    headers: Mapping[str, str],
    connect_timeout: float,
) -> Connected:
    """Try ``urls`` in order; the first that gives us a slot wins.

    Raises APIStatusError (401/403: bad key, not retryable; 503: all at capacity, retryable),
    APITimeoutError, or APIConnectionError when no server could be reached.
    """
    full: list[str] = []
    last_error: BaseException | None = None
    for url in urls:
        full.append(redact(url))
        try:
            res = await asyncio.wait_for(
                _open_one(session, url, headers=headers, ready_timeout=connect_timeout),
                connect_timeout,
            )
        except aiohttp.WSServerHandshakeError as e:
            if e.status in (401, 403):
                raise APIStatusError(
                    f"Kyutai server {redact(url)} rejected the API key (HTTP {e.status}): check "
                    f"api_key= or ${API_KEY_ENV}; it is sent as the '{API_KEY_HEADER}' header",
                    status_code=e.status,
                    retryable=False,
                ) from e
            logger.warning("Kyutai server %s refused the upgrade: %s", redact(url), e.status)
            last_error = APIStatusError(
                f"Kyutai server {redact(url)} refused the websocket upgrade (HTTP {e.status})",
                status_code=e.status,
            )
            continue
        except TimeoutError as e:
            logger.warning("Kyutai server %s timed out", redact(url))
            last_error = APITimeoutError(
                f"Kyutai server {redact(url)} timed out after {connect_timeout}s"
            )
            last_error.__cause__ = e
            continue
        except (aiohttp.ClientError, OSError) as e:
            logger.warning("Kyutai server %s unreachable: %s", redact(url), e)
            last_error = APIConnectionError(f"Kyutai server {redact(url)} is unreachable")
            last_error.__cause__ = e
            continue
        except APIConnectionError as e:
            last_error = e
            continue
        if isinstance(res, Connected):
            return res
        if res.at_capacity:
            logger.info("Kyutai server %s has no free channels, trying the next", redact(url))
            continue
        if res.bad_voice:
            # the same voice is unknown to every retry: a clear error, once
            logger.error("Kyutai server %s: %s", redact(url), res.message)
            raise APIStatusError(
                f"Kyutai server {redact(url)} refused the voice: {res.message}",
                status_code=404,
                retryable=False,
            )
        last_error = APIStatusError(
            f"Kyutai server {redact(url)} refused the session: {res.message}", status_code=500
        )
    if last_error is None:
        raise AtCapacityError(full)
    raise last_error
