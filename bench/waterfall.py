"""The load test's per-hop waterfall: each listener turn joined with the worker's marks of the
reply it heard, on one monotonic clock (the load generator and the worker on one host).

The listener knows two ends (its last voiced sample as captured, its first audible agent frame
as received); the worker logs the eight marks in between (`agent.ops.waterfall`). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.ops.waterfall import (
    HOPS,
    LISTENER_FIRST_AUDIO,
    USER_END,
    hop_durations,
    orchestration,
)

from .stats import Summary, format_table, summarize

NETWORK = tuple(h.name for h in HOPS if h.kind == "network")
MODEL = tuple(h.name for h in HOPS if h.kind == "model")
ORCHESTRATION = tuple(h.name for h in HOPS if h.kind == "orchestration")
TOTALS = ("listener", "hops_sum", "orchestration", "network", "model")


@dataclass(frozen=True)
class HeardTurn:
    """One listener turn: its room, its last voiced sample, its first audible answer."""

    room: str
    user_end: float
    heard_at: float


def match(turn: HeardTurn, records: Iterable[Mapping[str, Any]]) -> Mapping[str, float] | None:
    """The worker's marks of the reply this turn heard first: in its room, answering a user
    turn whose voice arrived after the user's last sample was captured, whose first frame went
    into the room before the listener heard it (the latest such). None when the log has none."""
    best: Mapping[str, float] | None = None
    for record in records:
        marks = record.get("marks", {})
        if record.get("room") != turn.room or not record.get("answers_user"):
            continue
        voice, room = marks.get("voice_in"), marks.get("room_first_frame")
        if voice is None or room is None or not (turn.user_end < voice and room < turn.heard_at):
            continue
        if best is None or room > best["room_first_frame"]:
            best = marks
    return best


def turn_hops(turn: HeardTurn, marks: Mapping[str, float]) -> dict[str, float | None]:
    """Every hop of one turn, and the totals: the listener's end to end, the hops' sum (equal
    to it when every mark is there), and the network, model and orchestration parts."""
    hops = hop_durations({**marks, USER_END: turn.user_end, LISTENER_FIRST_AUDIO: turn.heard_at})
    out: dict[str, float | None] = dict(hops)
    present = [v for v in hops.values() if v is not None]
    out["listener"] = turn.heard_at - turn.user_end
    out["hops_sum"] = sum(present) if len(present) == len(hops) else None
    out["orchestration"] = orchestration(hops)
    for name, part in (("network", NETWORK), ("model", MODEL)):
        values = [hops[h] for h in part]
        out[name] = None if any(v is None for v in values) else sum(v for v in values if v)
    return out


def summarize_hops(samples: Sequence[Mapping[str, float | None]]) -> dict[str, Summary]:
    """count, mean, p50, p90, p99 of each hop and total over the turns."""
    keys = [h.name for h in HOPS] + list(TOTALS)
    return {k: summarize(s.get(k) for s in samples) for k in keys}


def waterfall_table(stats: Mapping[str, Summary]) -> str:
    """The hops in order with their kind, then the totals, as a text table (ms)."""
    kinds = {h.name: h.kind for h in HOPS}
    rows: list[tuple[str, Summary]] = []
    for name, summary in stats.items():
        label = f"{name} ({kinds[name]})" if name in kinds else f"= {name}"
        rows.append((label, {k: _ms(v) for k, v in summary.items()}))
    return format_table(rows, unit="ms")


def _ms(value: float | int | None) -> float | int | None:
    if value is None or isinstance(value, int):
        return value
    return value * 1000


@dataclass(frozen=True)
class JitterBuffer:
    """The listener's receive buffer for the agent's audio over one session, from libwebrtc's
    inbound-rtp stats: the mean delay its samples waited, and the delay it aimed at."""

    room: str
    mean_ms: float
    target_ms: float
    minimum_ms: float


def jitter_buffer(
    room: str, delay_s: float, target_s: float, minimum_s: float, emitted: int
) -> JitterBuffer | None:
    """From the cumulative totals (seconds summed over the samples emitted); None before any
    sample came out of the buffer."""
    if emitted <= 0:
        return None
    per = 1000.0 / emitted
    return JitterBuffer(room, delay_s * per, target_s * per, minimum_s * per)
