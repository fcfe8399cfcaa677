"""The waterfall's bookkeeping: which marks a reply keeps, and the hops cut from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from livekit import rtc

from agent.ops.waterfall import (
    HOP_NAMES,
    LOG_PREFIX,
    TurnMarks,
    Waterfall,
    hop_durations,
    is_voiced,
    log_line,
    orchestration,
    parse_log,
)


def answered(wf: Waterfall) -> TurnMarks:
    """A user turn and its reply, marks 0.1 s apart from voice_in at 10.0."""
    wf.voice(9.9)
    wf.voice(10.0)  # the last voiced frame counts
    wf.end_of_speech(10.5)
    wf.turn_committed(10.6)
    wf.mark("llm_request", 10.7)
    wf.mark("llm_first_token", 10.8)
    wf.mark("llm_first_token", 10.85)  # later tokens do not move it
    wf.mark("tts_first_text", 10.9)
    wf.mark("tts_first_audio", 11.2)
    wf.mark("llm_request", 11.25)  # a tool step's second request does not either
    return wf.playout_started(11.3)


def test_a_committed_turn_keeps_its_first_marks_and_gives_every_agent_hop() -> None:
    turn = answered(Waterfall())
    assert turn.answers_user
    assert turn.marks["voice_in"] == 10.0 and turn.marks["llm_first_token"] == 10.8
    assert turn.marks["llm_request"] == 10.7
    hops = hop_durations({**turn.marks, "user_end": 9.95, "listener_first_audio": 11.45})
    assert list(hops) == list(HOP_NAMES)
    assert hops == pytest.approx(
        {
            "uplink": 0.05,
            "stt_end": 0.5,
            "commit": 0.1,
            "llm_start": 0.1,
            "llm_ttft": 0.1,
            "tts_text": 0.1,
            "tts_ttfb": 0.3,
            "to_room": 0.1,
            "downlink": 0.15,
        }
    )
    # the hops tile the whole turn: nothing is counted twice or left out
    assert sum(v for v in hops.values() if v is not None) == pytest.approx(11.45 - 9.95)
    assert turn.end_to_end == pytest.approx(1.3) and turn.tts_ttfb == pytest.approx(0.3)
    # orchestration: commit + llm_start + tts_text + to_room
    assert orchestration(hops) == pytest.approx(0.4)


def test_a_greeting_has_reply_marks_only_and_no_end_to_end() -> None:
    wf = Waterfall()
    wf.mark("llm_request", 1.0)
    wf.mark("tts_first_text", 1.2)
    wf.mark("tts_first_audio", 1.5)
    greeting = wf.playout_started(1.6)
    assert not greeting.answers_user
    assert greeting.end_to_end is None and greeting.tts_ttfb == pytest.approx(0.3)
    assert hop_durations(greeting.marks)["stt_end"] is None
    assert orchestration(hop_durations(greeting.marks)) is None


def test_a_new_turn_drops_the_marks_of_a_reply_that_never_played() -> None:
    wf = Waterfall()
    wf.voice(1.0)
    wf.turn_committed(1.5)
    wf.mark("llm_request", 1.6)  # the user talks again before any audio: a new turn
    wf.voice(3.0)
    wf.end_of_speech(3.4)
    wf.turn_committed(3.5)
    wf.mark("llm_request", 3.6)
    turn = wf.playout_started(4.0)
    assert turn.marks["llm_request"] == 3.6 and turn.marks["voice_in"] == 3.0
    # the next reply starts empty
    assert wf.playout_started(5.0).marks == {"room_first_frame": 5.0}


def test_an_end_of_speech_before_the_last_voice_is_not_this_turns() -> None:
    wf = Waterfall()
    wf.end_of_speech(1.0)  # a pause, then the user went on
    wf.voice(2.0)
    wf.turn_committed(2.6)  # committed without a new end of speech (a VAD turn)
    turn = wf.playout_started(3.0)
    assert "end_of_speech" not in turn.marks and turn.marks["voice_in"] == 2.0
    assert hop_durations(turn.marks)["stt_end"] is None


def test_only_reply_marks_can_be_set_by_name() -> None:
    with pytest.raises(ValueError, match="not a reply mark"):
        Waterfall().mark("voice_in", 1.0)
    with pytest.raises(ValueError, match="not a reply mark"):
        Waterfall().mark("room_first_frame", 1.0)


def frame(peak: int) -> rtc.AudioFrame:
    samples = np.zeros(480, dtype=np.int16)
    samples[100] = peak
    return rtc.AudioFrame(samples.tobytes(), 24000, 1, 480)


def test_voiced_frames_use_the_listeners_threshold() -> None:
    assert is_voiced(frame(301)) and is_voiced(frame(-2000))
    assert not is_voiced(frame(300)) and not is_voiced(frame(0))


def test_log_lines_round_trip_plain_or_json_and_a_torn_line_is_skipped() -> None:
    turn = answered(Waterfall())
    line = log_line("room-1", turn)
    as_json = json.dumps({"message": line, "level": "INFO"})
    torn = f'INFO x {LOG_PREFIX}{{"room": "torn", "marks": {{"voice'
    text = "\n".join([f"INFO x {line}", torn, as_json, '{"message": "turn waterfall {'])
    records = parse_log(text)
    assert len(records) == 2 and records[0] == records[1]
    assert records[0]["room"] == "room-1" and records[0]["answers_user"] is True
    assert records[0]["marks"] == {k: round(v, 4) for k, v in turn.marks.items()}
