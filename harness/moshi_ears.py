"""What the tiny keyed Moshi hears of a recording: its Mimi's voice-or-silence reading of each
80 ms frame (inference/tiny_moshi.py).

The tiny Moshi answers after `MOSHI_HANGOVER_FRAMES` user frames in a row that its Mimi reads as
silence. Whether a spoken fixture holds such a pause is a question about that reading, not
about the waveform's loudness: a quiet stretch of 120 ms may or may not cover two whole frames,
and in a room where the 80 ms boundaries fall changes from run to run. So tests that talk over
Moshi check their sentence here, at several frame offsets and a lower level (the room's Opus
leg), before relying on "the user did not pause".
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from inference.tiny_moshi import MOSHI_VOICE_CODES

FRAME = 1920  # Moshi's frame at 24 kHz


@cache
def _mimi(checkpoint: Path) -> Any:
    from moshi.models import loaders

    info = loaders.CheckpointInfo.from_hf_repo(
        "tiny/moshi",
        moshi_weights=checkpoint / "model.safetensors",
        mimi_weights=checkpoint / "mimi.safetensors",
        tokenizer=checkpoint / "tokenizer.model",
        config_path=checkpoint / "config.json",
        mimi_config_path=checkpoint / "mimi_config.json",
    )
    return info.get_mimi(device="cpu")


def heard_voice(checkpoint: Path, samples: np.ndarray, offset: int = 0) -> np.ndarray:
    """Per 80 ms frame, whether the Moshi Mimi in `checkpoint` reads a voice, with `offset`
    silent samples before `samples` (24 kHz) and a silent frame before those, as a session
    starts."""
    import torch

    if samples.ndim != 1:
        raise ValueError("mono samples expected")
    pcm = np.concatenate([np.zeros(FRAME + offset, np.float32), samples.astype(np.float32)])
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME, np.float32)])
    mimi = _mimi(checkpoint)
    heard = []
    with torch.no_grad(), mimi.streaming(1):
        for frame in pcm.reshape(-1, FRAME):
            codes = mimi.encode(torch.from_numpy(frame)[None, None])
            heard.append(bool(np.isin(int(codes[0, 0, 0]), MOSHI_VOICE_CODES)))
    return np.array(heard)


def longest_silent_run(heard: np.ndarray) -> int:
    """The most consecutive frames read as silence between the first and last voiced frame."""
    idx = np.flatnonzero(heard)
    best = run = 0
    for voiced in heard[idx[0] : idx[-1]] if len(idx) else ():
        run = 0 if voiced else run + 1
        best = max(best, run)
    return best


def longest_heard_pause(
    checkpoint: Path,
    samples: np.ndarray,
    *,
    offsets: int = 8,
    gains: tuple[float, ...] = (1.0, 0.7),
) -> int:
    """The longest pause, in frames read as silence, the tiny Moshi could hear inside `samples`
    (24 kHz): the worst over `offsets` frame alignments and the given levels."""
    return max(
        longest_silent_run(heard_voice(checkpoint, gain * samples, k * FRAME // offsets))
        for k in range(offsets)
        for gain in gains
    )
