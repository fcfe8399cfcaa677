"""The room audio queued while the STT server was unreachable: what a reconnect resends.

Pure logic. A reconnect finds everything the room said during the outage waiting in the
stream's input. Replayed whole, it leaves the server as far behind the room as the outage
was long, and every later turn waits for it (a 30 s outage: the next answer ~30 s of compute
late). Quiet stretches hold no words, so they are skipped except next to speech, where word
edges and the pauses that end turns live; speech is kept whole, so nothing said is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BACKLOG_S = 1.0
"""Queued audio up to this long is a normal start-up queue, replayed as it is."""
QUIET_RMS = 10 ** (-45 / 20)
"""A frame below -45 dBFS RMS is quiet (a microphone's room noise, a muted track)."""
PAD_S = 0.3
"""Quiet audio kept on each side of speech: a gap between two utterances stays ≥ 0.6 s."""
TAIL_S = 0.5
"""The end of the backlog is kept whole: it joins the live audio without a seam."""


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if pcm.size else 0.0


def keep_frames(
    levels: Sequence[float],
    durations: Sequence[float],
    *,
    quiet_rms: float = QUIET_RMS,
    pad_s: float = PAD_S,
    tail_s: float = TAIL_S,
    backlog_s: float = BACKLOG_S,
) -> list[bool]:
    """Which frames of a backlog to resend, given each frame's RMS level and duration.

    All of them when the backlog is no longer than `backlog_s`; otherwise every loud frame,
    the quiet frames within `pad_s` of a loud one, and the last `tail_s`.
    """
    if len(levels) != len(durations):
        raise ValueError("one level per frame duration")
    total = float(sum(durations))
    if total <= backlog_s:
        return [True] * len(levels)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]]) if durations else np.zeros(0)
    ends = starts + np.asarray(durations, dtype=np.float64)
    loud = [level >= quiet_rms for level in levels]
    eps = 1e-9  # the frames' times are sums of floats
    keep = [t_end > total - tail_s + eps for t_end in ends]
    last_loud_end: float | None = None
    for i, is_loud in enumerate(loud):  # forwards: quiet just after speech
        if is_loud:
            last_loud_end = float(ends[i])
        if is_loud or (last_loud_end is not None and starts[i] < last_loud_end + pad_s - eps):
            keep[i] = True
    next_loud_start: float | None = None
    for i in range(len(loud) - 1, -1, -1):  # backwards: quiet just before speech
        if loud[i]:
            next_loud_start = float(starts[i])
        elif next_loud_start is not None and ends[i] > next_loud_start - pad_s + eps:
            keep[i] = True
    return keep
