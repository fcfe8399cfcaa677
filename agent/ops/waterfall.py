"""Where the time of one turn goes: marks on one monotonic clock, from the user's last voiced
sample to the first audible answer, cut into hops.

The worker marks what it sees (`Waterfall`, fed with `time.monotonic()` by the agent's nodes
and the room output); a listener on the same machine adds both ends (the user's last voiced
sample as captured, the first audible agent frame as received), because CLOCK_MONOTONIC is one
clock for every process of a host. Across hosts the clocks differ: there only the worker's hops
are comparable. Pure: the caller passes the times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from livekit import rtc

# A sample louder than this counts as voice; the load generator and the test participant
# find the end of their speech with the same threshold (|int16| > 300).
VOICE_PEAK = 300 / 32768


def is_voiced(frame: rtc.AudioFrame) -> bool:
    """Whether a 16-bit frame holds a sample louder than VOICE_PEAK."""
    samples = np.frombuffer(frame.data, dtype=np.int16)
    return bool(samples.size) and int(np.abs(samples).max()) > VOICE_PEAK * 32768


Kind = Literal["network", "model", "orchestration"]

# The listener's two marks (the load generator's), around the worker's eight.
USER_END = "user_end"  # the user's last voiced sample, as captured by the user's microphone
LISTENER_FIRST_AUDIO = "listener_first_audio"  # the first audible agent frame, as received
AGENT_MARKS = (
    "voice_in",  # the frame holding the user's last voiced sample reaches the agent's STT node
    "end_of_speech",  # the STT's end of speech (Kyutai's pause heads) leaves the STT node
    "turn_committed",  # the framework commits the user's turn (on_user_turn_completed)
    "llm_request",  # the agent's LLM node starts the request
    "llm_first_token",  # the first text the LLM streams back
    "tts_first_text",  # the first text reaches the TTS node
    "tts_first_audio",  # the first audio frame leaves the TTS node
    "room_first_frame",  # the first frame goes into the room's audio source
)
REPLY_MARKS = AGENT_MARKS[3:]


@dataclass(frozen=True)
class Hop:
    name: str
    start: str
    end: str
    kind: Kind
    what: str


HOPS = (
    Hop("uplink", USER_END, "voice_in", "network", "microphone → livekit-server → agent"),
    Hop("stt_end", "voice_in", "end_of_speech", "model", "STT delay and the pause heads' wait"),
    Hop("commit", "end_of_speech", "turn_committed", "orchestration", "framework + endpointing"),
    Hop("llm_start", "turn_committed", "llm_request", "orchestration", "history, prompt, request"),
    Hop("llm_ttft", "llm_request", "llm_first_token", "model", "the LLM's first token"),
    Hop("tts_text", "llm_first_token", "tts_first_text", "orchestration", "text to the TTS node"),
    Hop("tts_ttfb", "tts_first_text", "tts_first_audio", "model", "the TTS's first audio"),
    Hop("to_room", "tts_first_audio", "room_first_frame", "orchestration", "sync, queues, source"),
    Hop("downlink", "room_first_frame", LISTENER_FIRST_AUDIO, "network", "agent → listener"),
)
HOP_NAMES = tuple(h.name for h in HOPS)


def hop_durations(marks: Mapping[str, float]) -> dict[str, float | None]:
    """Each hop's seconds; None where a mark is missing (a VAD turn has no STT end of speech)."""
    out: dict[str, float | None] = {}
    for hop in HOPS:
        a, b = marks.get(hop.start), marks.get(hop.end)
        out[hop.name] = None if a is None or b is None else b - a
    return out


def orchestration(hops: Mapping[str, float | None]) -> float | None:
    """Our code and the framework's: the sum of the orchestration hops. `commit` holds what is
    left of the endpointing delay (KYUTAI_MIN_ENDPOINTING_DELAY_S), which LiveKit counts from
    its VAD's end of speech: by the STT's end of speech it has mostly passed."""
    parts = [hops.get(h.name) for h in HOPS if h.kind == "orchestration"]
    if any(p is None for p in parts):
        return None
    return math.fsum(p for p in parts if p is not None)


@dataclass
class TurnMarks:
    """One reply's marks; `answers_user` when a committed user turn started it (not a greeting
    or a nudge: those have no user marks)."""

    marks: dict[str, float] = field(default_factory=dict)

    @property
    def answers_user(self) -> bool:
        return "turn_committed" in self.marks

    @property
    def end_to_end(self) -> float | None:
        """The user's last voice received → the first frame into the room: the agent's view."""
        a, b = self.marks.get("voice_in"), self.marks.get("room_first_frame")
        return None if a is None or b is None else b - a

    @property
    def tts_ttfb(self) -> float | None:
        return hop_durations(self.marks)["tts_ttfb"]


class Waterfall:
    """The worker's marks for the reply in progress. User marks are kept as they come (the last
    voiced frame, the last end of speech) and frozen into the turn when it is committed; reply
    marks keep their first time (a tool step's second LLM request does not move them). The
    first frame into the room closes the reply, heard or cut afterwards: it is what the
    listener waits for."""

    def __init__(self) -> None:
        self._last_voice: float | None = None
        self._last_end_of_speech: float | None = None
        self._turn = TurnMarks()

    def voice(self, t: float) -> None:
        self._last_voice = t

    def end_of_speech(self, t: float) -> None:
        self._last_end_of_speech = t

    def turn_committed(self, t: float) -> None:
        """A new turn: a reply of the previous one that never played is dropped."""
        self._turn = TurnMarks({"turn_committed": t})
        if self._last_voice is not None and self._last_voice <= t:
            self._turn.marks["voice_in"] = self._last_voice
        eos = self._last_end_of_speech
        if eos is not None and eos <= t and (self._last_voice is None or eos >= self._last_voice):
            self._turn.marks["end_of_speech"] = eos  # an end of speech of this turn's voice

    def mark(self, name: str, t: float) -> None:
        if name not in REPLY_MARKS or name == "room_first_frame":
            raise ValueError(f"not a reply mark: {name!r} (one of {REPLY_MARKS[:-1]})")
        self._turn.marks.setdefault(name, t)

    def playout_started(self, t: float) -> TurnMarks:
        """The reply's first frame went into the room: its marks, and a fresh reply."""
        done = self._turn
        done.marks["room_first_frame"] = t
        self._turn = TurnMarks()
        return done


# The worker logs each reply's marks on one line: {"room", "answers_user", "marks"}.
LOG_PREFIX = "turn waterfall "


def log_line(room: str, turn: TurnMarks) -> str:
    marks = {k: round(v, 4) for k, v in turn.marks.items()}
    body = {"room": room, "answers_user": turn.answers_user, "marks": marks}
    return LOG_PREFIX + json.dumps(body)


def parse_log(text: str) -> list[dict[str, Any]]:
    """Every reply's record in a worker log, plain or JSON lines, in order. A line that does
    not parse is skipped: a log may be read while it is being written."""
    out = []
    for line in text.splitlines():
        if LOG_PREFIX not in line:
            continue
        if line.startswith("{"):  # LiveKit's JSON log format: the record is in "message"
            try:
                line = str(json.loads(line).get("message", ""))
            except ValueError:
                continue
        body = line[line.find(LOG_PREFIX) + len(LOG_PREFIX) :]
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("marks"), dict):
            out.append(record)
    return out
