"""Fast barge-in: pause the agent's voice on the first loud user audio, before the VAD.

Silero needs voiced sound to recognise speech: on "stop" it fires ~150 ms after the onset,
once the vowel starts, and the fricative before it goes unheard. An energy onset seen on the
user's track while the agent speaks pauses the agent's audio output at once, provisionally:
if the VAD confirms speech, LiveKit's own interruption logic takes over the pause (resume on a
backchannel, interrupt on words); if not within `hold_s` (longer while the VAD still hears
the user, whose confirmation can lag on a loaded CPU), the pause is lifted. A false onset
(a click, a cough the VAD rejects) costs a short gap, and, as with any LiveKit pause, the
~0.2 s of audio queued in the room output is skipped; so after one false onset the gate stays
off until the agent's next reply (typing near the microphone must not chop a whole answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from livekit import rtc

from agent.log import logger
from agent.ops.metrics import FAST_PAUSES

BLOCK_S = 0.01
SILENCE_DBFS = -90.0


@dataclass
class OnsetOptions:
    margin_db: float = 15.0
    """How far above the tracked noise floor a block must be to count as loud."""
    min_dbfs: float = -45.0
    """Nothing quieter than this counts as loud, whatever the noise floor."""
    min_loud_s: float = 0.02
    """Consecutive loud audio that makes an onset: one 10 ms click does not."""
    floor_rise_db_per_s: float = 6.0
    """The floor follows a louder background at this rate (it drops at once)."""


class OnsetDetector:
    """Energy onsets in a mono stream, judged in 10 ms blocks against a noise floor."""

    def __init__(self, options: OnsetOptions | None = None) -> None:
        self.options = options or OnsetOptions()
        self.floor_dbfs: float | None = None
        self._loud_blocks = 0
        self._tail: np.ndarray = np.zeros(0, dtype=np.float32)
        self._sample_rate = 0

    def push(self, samples: np.ndarray, sample_rate: int) -> bool:
        """Feed float samples in [-1, 1]; True when an onset completes within them."""
        if sample_rate != self._sample_rate:
            self._sample_rate, self._tail = sample_rate, np.zeros(0, dtype=np.float32)
        block = max(1, int(sample_rate * BLOCK_S))
        data = np.concatenate([self._tail, samples]) if self._tail.size else samples
        whole = data.size // block * block
        self._tail = data[whole:].copy()
        onset = False
        for level in _block_levels(data[:whole], block):
            onset = self._block(level) or onset
        return onset

    def reset(self) -> None:
        """Start over (a new speaker, or a gap in the stream)."""
        self.floor_dbfs, self._loud_blocks = None, 0
        self._tail = np.zeros(0, dtype=np.float32)

    def _block(self, level: float) -> bool:
        o = self.options
        if self.floor_dbfs is None:
            self.floor_dbfs = level
        loud = level >= max(self.floor_dbfs + o.margin_db, o.min_dbfs)
        if loud:
            self._loud_blocks += 1
            # louder audio lifts the floor only slowly, so speech is not learnt as noise
            self.floor_dbfs += o.floor_rise_db_per_s * BLOCK_S
        else:
            self._loud_blocks = 0
            if level < self.floor_dbfs:
                self.floor_dbfs = level
            else:
                self.floor_dbfs = min(level, self.floor_dbfs + o.floor_rise_db_per_s * BLOCK_S)
        needed = max(1, math.ceil(o.min_loud_s / BLOCK_S - 1e-9))
        return loud and self._loud_blocks == needed


def _block_levels(data: np.ndarray, block: int) -> list[float]:
    if data.size == 0:
        return []
    power = np.mean(np.square(data.reshape(-1, block), dtype=np.float64), axis=1)
    return [10 * math.log10(p) if p > 1e-9 else SILENCE_DBFS for p in power]


def mono_samples(frame: rtc.AudioFrame) -> np.ndarray:
    """The first channel of an int16 frame as float samples in [-1, 1]."""
    data = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        data = data[:: frame.num_channels]
    return data.astype(np.float32) / 32768.0


class PausableOutput(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...


class SpeechState(Protocol):
    """What the gate needs to know of the session (AgentSession has all of it)."""

    @property
    def agent_state(self) -> str: ...
    @property
    def current_speech(self) -> Any: ...
    @property
    def user_state(self) -> str: ...


class FastBargeIn:
    """Provisional pauses of the agent's output on user onsets, lifted unless confirmed.

    `attach(output)` once the session runs: `output` is the session's audio output (the top of
    its chain, which the framework pauses). The room output at its end reports every pause and
    resume to `on_sink_pause` / `on_sink_resume` (see room_output.py): a pause by anyone else
    after ours means LiveKit took the interruption over, and the gate leaves the resume to it.
    """

    def __init__(
        self,
        session: SpeechState,
        *,
        detector: OnsetDetector | None = None,
        hold_s: float = 0.4,
        max_extra_holds: int = 2,
    ) -> None:
        self._session = session
        self._output: PausableOutput | None = None
        self.detector = detector or OnsetDetector()
        self.hold_s = hold_s
        self.max_extra_holds = max_extra_holds
        self._extra_holds = 0
        self._paused = False
        self._taken_over = False
        self._own_call = False
        self._timer: asyncio.TimerHandle | None = None
        self._spent_on: object | None = None  # the reply a false onset already paused

    def attach(self, output: PausableOutput) -> None:
        """Start gating `output`; until then onsets only teach the detector the noise floor."""
        self._output = output

    def on_sink_pause(self) -> None:
        """The room output was paused (by us or anyone)."""
        if not self._own_call and self._paused:
            self._taken_over = True  # the VAD confirmed: LiveKit owns the pause now

    def on_sink_resume(self) -> None:
        """The room output was resumed (by us or anyone)."""
        if not self._own_call and self._paused and not self._taken_over:
            self._on_foreign_resume()

    def on_frame(self, frame: rtc.AudioFrame) -> None:
        """A frame of the user's track (int16 PCM, as the room delivers it)."""
        self.on_user_audio(mono_samples(frame), frame.sample_rate)

    def on_user_audio(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.detector.push(samples, sample_rate) and self._may_pause():
            self._pause()

    def _may_pause(self) -> bool:
        if self._output is None or self._paused or self._session.agent_state != "speaking":
            return False
        speech = self._session.current_speech
        return (
            speech is not None
            and speech is not self._spent_on
            and speech.allow_interruptions
            and not speech.interrupted
        )

    def _pause(self) -> None:
        assert self._output is not None
        self._paused, self._taken_over, self._extra_holds = True, False, 0
        try:
            self._call(self._output.pause)
        except Exception:
            # a gate that fails must not leave the agent mute, nor itself stuck "paused"
            logger.exception("fast barge-in: pausing the agent's output failed")
            self._paused = False
            with contextlib.suppress(Exception):
                self._call(self._output.resume)
            return
        self._timer = asyncio.get_running_loop().call_later(self.hold_s, self._release)
        logger.debug("fast barge-in: paused the agent on a user onset")

    def _on_foreign_resume(self) -> None:
        # LiveKit resumed the output itself before confirming anything: our pause is over
        self._cancel_timer()
        self._paused = False

    def _release(self) -> None:
        self._timer = None
        if not self._paused:
            return
        if (
            not self._taken_over
            and self._session.user_state == "speaking"
            and self._extra_holds < self.max_extra_holds
        ):
            # the VAD hears the user but LiveKit has not paused yet: resuming now would play
            # a burst of the agent over the user just before LiveKit pauses it again
            self._extra_holds += 1
            self._timer = asyncio.get_running_loop().call_later(self.hold_s, self._release)
            return
        self._paused = False
        if self._taken_over:
            FAST_PAUSES.labels(outcome="confirmed").inc()
            return
        FAST_PAUSES.labels(outcome="released").inc()
        self._spent_on = self._session.current_speech
        logger.debug("fast barge-in: no speech followed the onset, resuming the agent")
        if self._output is not None:
            self._call(self._output.resume)

    def _call(self, fn: Any) -> None:
        self._own_call = True
        try:
            fn()
        finally:
            self._own_call = False

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self._cancel_timer()
        self._paused = False
