"""The stopwatch's bookkeeping and the echo floor's pairing (pure parts)."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc

from agent.ops.waterfall import is_voiced
from bench.stopwatch import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Heard,
    click,
    pair_up,
    turn_seen,
)


def test_a_turn_is_the_users_last_loud_frame_to_the_agents_first_after_it() -> None:
    user = Heard([1.0, 1.1, 4.0, 4.5, 4.6])
    agent = Heard([0.5, 2.0, 4.55, 5.4, 5.5])
    # the turn that ended near 4.6 (the listener's estimate may be off by a frame or two)
    assert turn_seen(user, agent, around=4.62) == pytest.approx(5.4 - 4.6)
    # the agent's audio during the user's speech does not count: only after the last frame
    assert turn_seen(user, agent, around=1.12) == pytest.approx(2.0 - 1.1)
    assert turn_seen(user, agent, around=8.0) is None  # no user frame within the window
    assert turn_seen(user, Heard([0.5]), around=4.6) is None  # no answer yet


def test_pairing_takes_the_first_arrival_after_each_send_and_skips_a_lost_one() -> None:
    sent = [1.0, 2.0, 3.0]
    arrived = [1.05, 1.07, 3.06]  # the second click was lost
    assert pair_up(sent, arrived) == pytest.approx([0.05, 0.06])


def test_a_click_is_loud_from_its_first_sample_and_silence_is_not() -> None:
    tone = click()
    assert abs(int(tone[0])) > 300 and tone.size == SAMPLE_RATE // 20
    first = rtc.AudioFrame(tone[:FRAME_SAMPLES].tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
    quiet = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    assert is_voiced(first)
    assert not is_voiced(rtc.AudioFrame(quiet.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES))
