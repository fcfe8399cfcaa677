"""Where one burst of Moshi's speech begins and ends, for LiveKit's duplex adapter. Pure.

Moshi streams a frame every 80 ms whether it speaks or not; the adapter plays only the frames
its gate lets through, and each opening of the gate becomes one assistant message. A level
gate alone clips the first syllable and splits sentences at short pauses; Moshi's own
inner-monologue text is aligned with its audio, so the session marks each frame that carries a
text piece (`TEXT_KEY` in the frame's `userdata`), and the gate opens on that text or on audio
that stands out from Moshi's learned silence (a laugh or a breath has no text), and closes once
neither has been seen for `hangover_s`.
"""

from __future__ import annotations

import numpy as np
from livekit import rtc

TEXT_KEY = "kyutai.moshi.text"  # the frame's step carried a monologue piece
STEP_KEY = "kyutai.moshi.step"  # the frame's step index on Moshi's clock

# Below this a frame is silence whatever the learned floor (about -50 dBFS).
ABS_SILENCE_RMS = 0.003


def frame_rms(frame: rtc.AudioFrame) -> float:
    samples = np.frombuffer(frame.data, dtype=np.int16).astype(np.float32)
    return float(np.sqrt(np.mean(np.square(samples)))) / 32768.0 if samples.size else 0.0


class MoshiGate:
    """An `AudioGate` (livekit.agents.llm.duplex_adapter) for Moshi's output."""

    def __init__(self, *, hangover_s: float = 0.5, activation_ratio: float = 3.0) -> None:
        self.hangover_s = hangover_s
        self.activation_ratio = activation_ratio
        self.floor = ABS_SILENCE_RMS
        self._open = False
        self._quiet = 0.0

    @property
    def is_open(self) -> bool:
        return self._open

    def deactivate(self) -> None:
        self._open = False
        self._quiet = 0.0

    def update(self, frame: rtc.AudioFrame) -> bool:
        rms = frame_rms(frame)
        text = bool((frame.userdata or {}).get(TEXT_KEY))
        if not text:
            # The floor follows Moshi's quietest frames down at once and up only slowly, so
            # a long sentence without text (a laugh) does not become the new silence.
            self.floor = max(ABS_SILENCE_RMS, min(self.floor * 1.02, max(rms, ABS_SILENCE_RMS)))
        loud = rms > max(ABS_SILENCE_RMS, self.floor) * self.activation_ratio
        if text or loud:
            self._open = True
            self._quiet = 0.0
        elif self._open:
            self._quiet += frame.duration
            if self._quiet >= self.hangover_s:
                self._open = False
                self._quiet = 0.0
        return self._open
