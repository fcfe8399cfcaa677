"""The load test's waterfall: a listener's turn joined with the worker's marks of its answer."""

from __future__ import annotations

import pytest

from agent.ops.waterfall import AGENT_MARKS, HOP_NAMES
from bench.loadtest import jitter_buffer_line
from bench.waterfall import (
    HeardTurn,
    jitter_buffer,
    match,
    summarize_hops,
    turn_hops,
    waterfall_table,
)


def record(room: str, start: float, answers_user: bool = True) -> dict[str, object]:
    """A worker record whose eight marks are 0.1 s apart from `start`."""
    marks = {name: start + 0.1 * i for i, name in enumerate(AGENT_MARKS)}
    return {"room": room, "answers_user": answers_user, "marks": marks}


def test_a_turn_takes_the_answer_it_heard_in_its_own_room() -> None:
    turn = HeardTurn("r1", user_end=10.0, heard_at=11.0)
    records = [
        record("r1", 5.0),  # an earlier turn: its voice came before this user's end
        record("r2", 10.05),  # another room
        record("r1", 10.05, answers_user=False),  # a nudge, not an answer
        record("r1", 10.02),  # answered, but cut: a later reply is the one heard first
        record("r1", 10.04),
        record("r1", 10.3),  # its first frame came after the listener heard something
    ]
    marks = match(turn, records)
    assert marks is not None and marks["voice_in"] == pytest.approx(10.04)
    assert match(HeardTurn("r3", 10.0, 11.0), records) is None


def test_the_hops_of_a_turn_add_up_to_what_the_listener_measured() -> None:
    turn = HeardTurn("r1", user_end=10.0, heard_at=11.0)
    marks = record("r1", 10.04)["marks"]
    assert isinstance(marks, dict)
    hops = turn_hops(turn, marks)
    assert hops["uplink"] == pytest.approx(0.04) and hops["downlink"] == pytest.approx(0.26)
    assert hops["listener"] == pytest.approx(1.0) and hops["hops_sum"] == pytest.approx(1.0)
    assert hops["network"] == pytest.approx(0.3)
    assert hops["model"] == pytest.approx(0.3)  # stt_end, llm_ttft, tts_ttfb
    assert hops["orchestration"] == pytest.approx(0.4)
    # a missing mark (a VAD turn: no STT end of speech) leaves its hops and the sum unknown
    del marks["end_of_speech"]
    partial = turn_hops(turn, marks)
    assert partial["stt_end"] is None and partial["commit"] is None
    assert partial["hops_sum"] is None and partial["model"] is None
    assert partial["listener"] == pytest.approx(1.0)


def test_the_summary_and_table_cover_every_hop_in_order() -> None:
    turn = HeardTurn("r1", 10.0, 11.0)
    samples = [turn_hops(turn, record("r1", 10.0 + 0.01 * i)["marks"]) for i in range(1, 5)]  # type: ignore[arg-type]
    stats = summarize_hops(samples)
    assert list(stats)[: len(HOP_NAMES)] == list(HOP_NAMES)
    assert stats["listener"]["count"] == 4 and stats["uplink"]["p50"] == pytest.approx(0.025)
    table = waterfall_table(stats)
    assert "uplink (network)" in table and "= orchestration" in table
    assert "25.000" in table  # milliseconds


def test_the_listeners_jitter_buffer_is_a_mean_per_emitted_sample() -> None:
    # libwebrtc's totals: seconds summed over every sample the buffer emitted
    buf = jitter_buffer("r", delay_s=480.0, target_s=384.0, minimum_s=360.0, emitted=16000)
    assert buf is not None
    assert (buf.mean_ms, buf.target_ms, buf.minimum_ms) == pytest.approx((30.0, 24.0, 22.5))
    assert jitter_buffer("r", 0.0, 0.0, 0.0, emitted=0) is None  # nothing played yet
    other = jitter_buffer("s", delay_s=960.0, target_s=384.0, minimum_s=360.0, emitted=16000)
    assert other is not None
    line = jitter_buffer_line([buf, other])
    assert "2 sessions" in line and "(30.0-60.0)" in line and "target p50 24.0 ms" in line
