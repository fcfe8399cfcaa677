"""What a reconnect resends of the audio queued during an outage (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from livekit.plugins.kyutai.backlog import QUIET_RMS, keep_frames, rms

LOUD = 0.1
F = 0.1  # 100 ms frames keep the arithmetic readable


def kept_seconds(mask: list[bool]) -> list[float]:
    return [round(i * F, 1) for i, k in enumerate(mask) if k]


def test_a_short_queue_is_resent_whole() -> None:
    assert keep_frames([0.0] * 10, [F] * 10) == [True] * 10


def test_quiet_far_from_speech_is_skipped_speech_and_its_edges_kept() -> None:
    levels = [0.0] * 20 + [LOUD] * 5 + [0.0] * 20  # speech at 2.0..2.5 s of 4.5 s
    mask = keep_frames(levels, [F] * 45)
    # 0.3 s before the speech, the speech, 0.3 s after it, and the last 0.5 s
    assert kept_seconds(mask) == [
        *[1.7, 1.8, 1.9],
        *[2.0, 2.1, 2.2, 2.3, 2.4],
        *[2.5, 2.6, 2.7],
        *[4.0, 4.1, 4.2, 4.3, 4.4],
    ]


def test_an_all_quiet_backlog_keeps_only_its_tail() -> None:
    assert kept_seconds(keep_frames([0.0] * 30, [F] * 30)) == [2.5, 2.6, 2.7, 2.8, 2.9]


def test_every_loud_frame_is_kept() -> None:
    rng = np.random.default_rng(7)
    levels = [float(x) for x in rng.choice([0.0, LOUD], size=200, p=[0.9, 0.1])]
    mask = keep_frames(levels, [F / 4] * 200)
    assert all(k for k, level in zip(mask, levels, strict=True) if level >= QUIET_RMS)
    assert not all(mask)


def test_levels_and_durations_must_match() -> None:
    with pytest.raises(ValueError, match="one level per frame"):
        keep_frames([0.0, 0.0], [F])


def test_rms() -> None:
    assert rms(np.zeros(0, dtype=np.float32)) == 0.0
    assert rms(np.full(10, 0.5, dtype=np.float32)) == pytest.approx(0.5)
