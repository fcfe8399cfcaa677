"""Backchannels ("mm-hm", "yeah") said over the agent are not interruptions."""

from __future__ import annotations


class BackchannelFilter:
    """Tells a backchannel ("mm-hm", "yeah") said over the agent from a real interruption.

    LiveKit pauses the agent as soon as the user makes a sound and resumes it if no transcript
    follows; but any final transcript interrupts it for good. So the agent's STT node drops the
    final transcript of an utterance that overlapped the agent's speech and was short (under
    `max_s` of speech) or had fewer than `min_words` words: the paused agent then resumes.
    """

    def __init__(self, max_s: float, min_words: int) -> None:
        self.max_s = max_s
        self.min_words = min_words
        self._overlapping = False
        self._spoke_for: float | None = None

    def user_started(self, *, agent_speaking: bool) -> None:
        self._overlapping = agent_speaking
        self._spoke_for = None

    def user_stopped(self, spoke_for_s: float) -> None:
        self._spoke_for = spoke_for_s

    @property
    def timed(self) -> bool:
        """Whether the current utterance's length is known (the VAD saw it end)."""
        return self._spoke_for is not None

    def is_backchannel(self, transcript: str) -> bool:
        if not self._overlapping:
            return False
        short = self._spoke_for is not None and self._spoke_for < self.max_s
        return short or len(transcript.split()) < self.min_words

    def consumed(self) -> None:
        self._overlapping = False
