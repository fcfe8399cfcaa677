"""Prometheus metrics, in a registry per app so several apps (tests) never collide."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter


class Refusal(StrEnum):
    MISSING_KEY = "missing_key"
    INVALID_KEY = "invalid_key"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    ROOM_NOT_ALLOWED = "room_not_allowed"
    RATE_LIMITED = "rate_limited"
    INVALID_REQUEST = "invalid_request"
    UNKNOWN_SELECTION = "unknown_selection"
    LINE_FULL = "line_full"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.issued = Counter(
            "kyutai_tokens_issued",
            "Room tokens issued.",
            ["auth", "character"],
            registry=self.registry,
        )
        self.refused = Counter(
            "kyutai_tokens_refused",
            "Token requests refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        # Pre-create every label so dashboards see zeros rather than missing series.
        for reason in Refusal:
            self.refused.labels(reason=reason.value)
