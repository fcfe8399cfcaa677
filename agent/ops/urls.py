"""The HTTP side of a Kyutai server the worker knows by its websocket URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def http_endpoint(service_url: str, path: str) -> str:
    """http(s)://host:port`path` for a server given as ws(s):// or http(s)://: its own path is
    replaced (`wss://gpu/api/asr-streaming` → `https://gpu/metrics`), unless it already ends
    with `path` (`https://proxy/kyutai/metrics`, an endpoint behind a prefix, is kept)."""
    parts = urlsplit(service_url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme or "http")
    kept = parts.path if parts.path.endswith(path) else path
    return urlunsplit((scheme, parts.netloc, kept, "", ""))
