"""Where a talk-over goes inside the Moshi session (pure): the moments a latency waterfall
needs from this side of the wire.

- `user_onset`: a loud input frame after at least `quiet_s` of quiet (the user's voice reached
  the agent);
- `onset_sent`: the 80 ms frame holding that onset went to the server;
- `moshi_loud` / `moshi_quiet`: Moshi's output turned audible / silent (its step is logged).

The session logs each as `moshi hop <name> at <monotonic s> step <n>` (debug level): every process
on one machine shares the monotonic clock, so a bench lines them up with what its listener
heard (`bench.duplex`).
"""

from __future__ import annotations

from dataclasses import dataclass

LOUD_RMS = 0.01  # about -40 dBFS: speech, not line noise
QUIET_S = 0.3


@dataclass
class HopTracker:
    quiet_s: float = QUIET_S
    _in_quiet: float = QUIET_S  # the session starts quiet
    _in_samples: int = 0  # input samples (24 kHz) seen before the current frame
    _onset_sample: int | None = None
    _out_loud: bool = False

    def input(self, rms: float, duration_s: float) -> bool:
        """An input frame; True when it is a user onset."""
        if rms < LOUD_RMS:
            self._in_quiet += duration_s
            return False
        onset = self._in_quiet >= self.quiet_s
        self._in_quiet = 0.0
        if onset:
            self._onset_sample = self._in_samples
        return onset

    def input_samples(self, n: int) -> None:
        """`n` samples of the current frame reached the send queue (after resampling)."""
        self._in_samples += n

    def sent(self, first: int, n: int) -> bool:
        """Samples [first, first + n) were sent; True when they hold the pending onset."""
        if self._onset_sample is not None and first <= self._onset_sample < first + n:
            self._onset_sample = None
            return True
        if self._onset_sample is not None and self._onset_sample < first:
            self._onset_sample = None  # resent after a reconnection, or dropped
        return False

    def output(self, rms: float) -> str | None:
        """An output frame; `moshi_loud` or `moshi_quiet` when Moshi's audibility changed."""
        loud = rms >= LOUD_RMS
        if loud == self._out_loud:
            return None
        self._out_loud = loud
        return "moshi_loud" if loud else "moshi_quiet"
