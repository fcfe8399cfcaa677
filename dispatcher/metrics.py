"""The dispatcher's Prometheus metrics (GET /metrics on its HTTP port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WAITING = Gauge("kyutai_dispatcher_rooms_waiting", "rooms with a person and no agent, in line")
TIME_TO_AGENT = Histogram(
    "kyutai_dispatcher_time_to_agent_seconds",
    "time a room spent in line before its agent joined",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
GIVEN_UP = Counter("kyutai_dispatcher_rooms_given_up_total", "rooms told no agent would come")
DISPATCHES = Counter("kyutai_dispatcher_dispatches_total", "dispatches created by the dispatcher")
