"""Per-turn latency: the stages of one reply joined by speech id."""

from __future__ import annotations

import pytest

from agent.ops.metrics import TurnLatencyTracker


def test_turn_latency_tracker_joins_stages() -> None:
    tracker = TurnLatencyTracker()
    assert tracker.on_llm("s1", 0.2) is None
    assert tracker.on_eou("s1", 0.3, 0.25) is None
    turn = tracker.on_tts("s1", 0.15)
    assert turn is not None and turn.end_to_end == pytest.approx(0.65)
    assert tracker.pending == {}
