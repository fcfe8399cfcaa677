"""Per-turn latency breakdown and the worker's Prometheus metrics.

Job processes record into prometheus_client's multiprocess directory (set up by the worker),
so the worker's `/metrics` shows every conversation it served.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

SESSIONS = Counter("kyutai_agent_sessions", "Conversations started")
INTERRUPTIONS = Counter("kyutai_agent_interruptions", "Agent speech interrupted by the user")
FALSE_INTERRUPTIONS = Counter(
    "kyutai_agent_false_interruptions", "Interruptions that turned out to be noise or backchannel"
)
FAST_PAUSES = Counter(
    "kyutai_agent_fast_pauses",
    "Agent paused on a user's energy onset, by outcome: confirmed (the VAD heard speech and "
    "LiveKit took over) or released (no speech followed; the agent went on)",
    ["outcome"],
)
ERRORS = Counter("kyutai_agent_errors", "Errors by pipeline stage", ["stage"])
TURN_LATENCY = Histogram(
    "kyutai_agent_turn_latency_seconds",
    "Latency of one agent turn by stage: end_of_turn (user silence to turn end), "
    "transcript (user silence to final transcript), llm_ttft, tts_ttfb (first text to first "
    "audio, at playout start), end_to_end (the user's last voice received to the first frame "
    "into the room, at playout start: cut replies count)",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
STAGES = ("end_of_turn", "transcript", "llm_ttft", "tts_ttfb", "end_to_end")


def observe_stage(stage: str, value: float) -> None:
    if value >= 0:  # the framework reports -1 for "not measured"
        TURN_LATENCY.labels(stage=stage).observe(value)
