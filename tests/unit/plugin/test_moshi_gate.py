"""The speech gate of kyutai.Moshi: open on monologue text or on audio above the learned silence,
closed after the hangover, and what the session marks on its frames."""

from __future__ import annotations

import numpy as np
from livekit import rtc

from livekit.plugins.kyutai.moshi_gate import TEXT_KEY, MoshiGate, frame_rms

SR = 24000


def frame(level: float, *, text: bool = False, seed: int = 0) -> rtc.AudioFrame:
    rng = np.random.default_rng(seed)
    pcm = level * rng.standard_normal(1920) if level else np.zeros(1920)
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    return rtc.AudioFrame(data, SR, 1, 1920, userdata={TEXT_KEY: text})


def test_text_opens_it_at_once_even_on_a_quiet_first_syllable() -> None:
    gate = MoshiGate()
    assert not gate.update(frame(0.0))
    assert gate.update(frame(0.004, text=True))  # quiet onset, but Moshi is speaking
    assert gate.is_open


def test_it_closes_after_the_hangover_and_not_before() -> None:
    gate = MoshiGate(hangover_s=0.5)
    gate.update(frame(0.1, text=True))
    opened = [gate.update(frame(0.0)) for _ in range(8)]
    # 0.08 s per frame: still open through 0.48 s of quiet, closed at 0.56 s
    assert opened == [True] * 6 + [False] * 2


def test_loud_audio_without_text_opens_it_a_laugh() -> None:
    gate = MoshiGate()
    for i in range(20):  # Moshi's own silence: a faint floor
        assert not gate.update(frame(0.002, seed=i))
    assert gate.update(frame(0.05, seed=99))


def test_the_floor_follows_a_louder_silence_slowly() -> None:
    gate = MoshiGate()
    for i in range(200):  # a model whose silence is not digital zero
        gate.update(frame(0.006, seed=i))
    assert 0.005 < gate.floor < 0.008
    gate.deactivate()
    assert not gate.update(frame(0.006, seed=500)) and not gate.is_open


def test_rms_of_int16_frames() -> None:
    assert frame_rms(frame(0.0)) == 0.0
    assert abs(frame_rms(frame(0.1)) - 0.1) < 0.01
