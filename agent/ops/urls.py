"""The HTTP side of a Kyutai server the worker knows by its websocket URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def http_endpoint(service_url: str, path: str) -> str:
    """http(s)://host:port`path` for a server given as ws(s):// or http(s)://, whatever path
    it had (`wss://gpu/api/asr-streaming` → `https://gpu/metrics`)."""
    parts = urlsplit(service_url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme or "http")
    return urlunsplit((scheme, parts.netloc, path, "", ""))
