"""The energy onset detector behind fast barge-in."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.barge_in import OnsetDetector, OnsetOptions

RATE = 24000
BLOCK = RATE // 100


def tone(seconds: float, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise at an RMS level of `dbfs`."""
    return (rng.normal(0, 1, int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def onset_blocks(signal: np.ndarray, **options: float) -> list[int]:
    """Indices of the 10 ms blocks that completed an onset (pushed block by block)."""
    detector = OnsetDetector(OnsetOptions(**options))
    starts = range(0, signal.size, BLOCK)
    return [i for i, s in enumerate(starts) if detector.push(signal[s : s + BLOCK], RATE)]


def test_a_quiet_fricative_over_silence_is_an_onset_after_20_ms() -> None:
    rng = np.random.default_rng(1)
    # the "s" of "stop" in our espeak fixture is ~-35 dBFS: Silero does not call it speech
    signal = np.concatenate([silence(0.5), tone(0.12, -35, rng), tone(0.3, -14, rng)])
    assert onset_blocks(signal) == [51]  # blocks 50 and 51 are loud: 20 ms


def test_one_loud_block_is_not_an_onset() -> None:
    rng = np.random.default_rng(2)
    signal = np.concatenate([silence(0.3), tone(0.01, -10, rng), silence(0.3)])
    assert onset_blocks(signal) == []


def test_sound_below_the_absolute_minimum_is_ignored() -> None:
    rng = np.random.default_rng(3)
    signal = np.concatenate([silence(0.3), tone(0.5, -50, rng)])
    assert onset_blocks(signal) == []


def test_a_steady_background_is_learnt_and_speech_above_it_still_counts() -> None:
    rng = np.random.default_rng(4)
    noisy_room = tone(2.0, -38, rng)  # above the absolute minimum from the very start
    speech = tone(0.3, -20, rng) + tone(0.3, -38, rng)
    assert onset_blocks(np.concatenate([noisy_room, speech])) == [201]


def test_a_background_that_swells_slowly_is_not_an_onset() -> None:
    rng = np.random.default_rng(5)
    seconds = 4.0
    ramp_db = np.linspace(-60, -36, int(seconds * RATE))  # 6 dB/s, a fan spinning up
    signal = (rng.normal(0, 1, ramp_db.size) * 10 ** (ramp_db / 20)).astype(np.float32)
    assert onset_blocks(signal) == []


def test_the_margin_decides_how_loud_an_onset_must_be() -> None:
    rng = np.random.default_rng(6)
    signal = np.concatenate([tone(1.0, -50, rng), tone(0.3, -40, rng)])  # +10 dB
    assert onset_blocks(signal, margin_db=15) == []
    assert onset_blocks(signal, margin_db=6) == [101]


def test_sustained_sound_is_one_onset_and_the_next_utterance_another() -> None:
    rng = np.random.default_rng(7)
    utterance = tone(0.8, -20, rng)
    signal = np.concatenate([silence(0.5), utterance, silence(0.5), utterance])
    assert onset_blocks(signal) == [51, 181]


def test_reset_forgets_the_floor() -> None:
    rng = np.random.default_rng(8)
    detector = OnsetDetector()
    detector.push(tone(1.0, -30, rng), RATE)
    assert detector.floor_dbfs is not None and detector.floor_dbfs > -40
    detector.reset()
    assert detector.floor_dbfs is None


@settings(max_examples=40, deadline=None)
@given(
    chunks=st.lists(st.integers(min_value=1, max_value=2400), min_size=1, max_size=30),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_how_the_stream_is_cut_into_frames_does_not_matter(chunks: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    signal = np.concatenate(
        [silence(0.2), tone(0.2, -25, rng), silence(0.3), tone(0.05, -30, rng), silence(0.1)]
    )
    reference = OnsetDetector()
    expected = sum(
        reference.push(signal[i : i + BLOCK], RATE) for i in range(0, signal.size, BLOCK)
    )
    detector = OnsetDetector()
    got, pos, k = 0, 0, 0
    while pos < signal.size:
        size = chunks[k % len(chunks)]
        got += detector.push(signal[pos : pos + size], RATE)
        pos, k = pos + size, k + 1
    assert got == expected == 2
    assert detector.floor_dbfs == reference.floor_dbfs
