"""How long the line of rooms waiting for an agent is: asked of the dispatcher (`GET /line`).

The token service refuses a new conversation (503 + Retry-After) when the line is already
`TOKEN_MAX_LINE` long: better to say "busy, come back" at once than seat one more person in
a room no agent will reach for minutes. A dispatcher that does not answer never blocks tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request

logger = logging.getLogger("tokens")
TIMEOUT_S = 1.0


def _fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
        body = json.loads(resp.read(10_000))
    waiting = body["waiting"]
    if not isinstance(waiting, int) or isinstance(waiting, bool) or waiting < 0:
        raise ValueError(f"unexpected answer {body!r}")
    return waiting


async def waiting_rooms(dispatcher_url: str) -> int | None:
    """Rooms in line, or None when the dispatcher can't say."""
    url = f"{dispatcher_url.rstrip('/')}/line"
    try:
        return await asyncio.to_thread(_fetch, url)
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("dispatcher line at %s unknown (%s): not limiting tokens", url, exc)
        return None
