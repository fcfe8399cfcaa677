"""Per-turn latency breakdown and the worker's Prometheus metrics.

Job processes record into prometheus_client's multiprocess directory (set up by the worker),
so the worker's `/metrics` shows every conversation it served.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

SESSIONS = Counter("kyutai_agent_sessions", "Conversations started")
INTERRUPTIONS = Counter("kyutai_agent_interruptions", "Agent speech interrupted by the user")
FALSE_INTERRUPTIONS = Counter(
    "kyutai_agent_false_interruptions", "Interruptions that turned out to be noise or backchannel"
)
FAST_PAUSES = Counter(
    "kyutai_agent_fast_pauses",
    "Agent paused on a user's energy onset, by outcome: confirmed (the VAD heard speech and "
    "LiveKit took over) or released (no speech followed; the agent went on)",
    ["outcome"],
)
ERRORS = Counter("kyutai_agent_errors", "Errors by pipeline stage", ["stage"])
TURN_LATENCY = Histogram(
    "kyutai_agent_turn_latency_seconds",
    "Latency of one agent turn by stage: end_of_turn (user silence to turn end), "
    "transcript (user silence to final transcript), llm_ttft, tts_ttfb, end_to_end",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
STAGES = ("end_of_turn", "transcript", "llm_ttft", "tts_ttfb", "end_to_end")


@dataclass
class TurnLatency:
    speech_id: str
    end_of_turn: float | None = None
    transcript: float | None = None
    llm_ttft: float | None = None
    tts_ttfb: float | None = None

    @property
    def complete(self) -> bool:
        return None not in (self.end_of_turn, self.llm_ttft, self.tts_ttfb)

    @property
    def end_to_end(self) -> float | None:
        """User silence to first agent audio, as the agent sees it."""
        if not self.complete:
            return None
        assert self.end_of_turn is not None and self.llm_ttft is not None
        assert self.tts_ttfb is not None
        return self.end_of_turn + self.llm_ttft + self.tts_ttfb

    def as_dict(self) -> dict[str, float | None]:
        return {
            "end_of_turn": self.end_of_turn,
            "transcript": self.transcript,
            "llm_ttft": self.llm_ttft,
            "tts_ttfb": self.tts_ttfb,
            "end_to_end": self.end_to_end,
        }


@dataclass
class TurnLatencyTracker:
    """Joins the framework's EOU, LLM and TTS metrics of one reply by speech id."""

    pending: dict[str, TurnLatency] = field(default_factory=dict)
    max_pending: int = 32

    def _turn(self, speech_id: str) -> TurnLatency:
        if speech_id not in self.pending:
            if len(self.pending) >= self.max_pending:  # replies that never spoke (cancelled)
                self.pending.pop(next(iter(self.pending)))
            self.pending[speech_id] = TurnLatency(speech_id)
        return self.pending[speech_id]

    def on_eou(
        self, speech_id: str, end_of_utterance_delay: float, transcription_delay: float
    ) -> TurnLatency | None:
        turn = self._turn(speech_id)
        turn.end_of_turn, turn.transcript = end_of_utterance_delay, transcription_delay
        return self._pop_if_complete(turn)

    def on_llm(self, speech_id: str, ttft: float) -> TurnLatency | None:
        turn = self._turn(speech_id)
        if turn.llm_ttft is None:  # the first LLM call of a reply (tool steps come later)
            turn.llm_ttft = ttft
        return self._pop_if_complete(turn)

    def on_tts(self, speech_id: str, ttfb: float) -> TurnLatency | None:
        turn = self._turn(speech_id)
        if turn.tts_ttfb is None:
            turn.tts_ttfb = ttfb
        return self._pop_if_complete(turn)

    def _pop_if_complete(self, turn: TurnLatency) -> TurnLatency | None:
        if turn.complete:
            return self.pending.pop(turn.speech_id)
        return None


def observe_stage(stage: str, value: float) -> None:
    if value >= 0:  # the framework reports -1 for "not measured"
        TURN_LATENCY.labels(stage=stage).observe(value)
