"""End-of-turn decisions from the STT's pause-prediction heads (pure logic, no I/O).

The STT stream feeds the decoded ``Word`` / ``EndWord`` / ``Step`` messages in, and a flush
completion when its marker comes back; the tracker answers with what happened to the user's turn.
All times are on the server's audio timeline (seconds of audio the server has received).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import FRAME_DURATION


@dataclass
class TurnOptions:
    """How the pause heads end a turn. The defaults behave like Unmute.

    pause_head: which head to read (0..3 ↔ pauses of 0.5, 1, 2, 3 s; lower is more eager).
    threshold: the turn ends when the (smoothed) pause probability rises above it.
    smoothing: weight of the previous value in an exponential moving average of the
        probability, in [0, 1). 0 reacts to each 80 ms step alone, as Unmute does.
    warmup_steps: `Step` messages ignored at the start of a connection, where the heads are
        unreliable (12 steps ≈ 1 s). Counted per connection, as Unmute does: Kyutai's Rust
        server numbers `step_idx` across its whole batch, not per connection.
    use_pause_heads: False leaves ending turns to the framework's flush (e.g. when LiveKit's
        VAD decides turns, or for a model whose heads mean nothing).
    """

    pause_head: int = 2
    threshold: float = 0.6
    smoothing: float = 0.0
    warmup_steps: int = 12
    use_pause_heads: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.pause_head <= 3:
            raise ValueError("pause_head must be in 0..3")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError("smoothing must be in [0, 1)")
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")


@dataclass(frozen=True)
class TimedWord:
    text: str
    start_time: float
    end_time: float | None = None


# What the tracker reports. The STT stream turns these into framework SpeechEvents.
@dataclass(frozen=True)
class SpeechStarted:
    start_time: float


@dataclass(frozen=True)
class TranscriptUpdated:
    words: tuple[TimedWord, ...]

    @property
    def text(self) -> str:
        return join_words(self.words)


@dataclass(frozen=True)
class SpeechEnded:
    end_time: float


@dataclass(frozen=True)
class FlushNeeded:
    """Push silence / a marker so the words still inside the model delay come out."""


@dataclass(frozen=True)
class TurnFinished:
    words: tuple[TimedWord, ...]

    @property
    def text(self) -> str:
        return join_words(self.words)

    @property
    def start_time(self) -> float:
        return self.words[0].start_time

    @property
    def end_time(self) -> float:
        last = self.words[-1]
        return last.end_time if last.end_time is not None else last.start_time


TurnEvent = SpeechStarted | TranscriptUpdated | SpeechEnded | FlushNeeded | TurnFinished


def join_words(words: tuple[TimedWord, ...] | list[TimedWord]) -> str:
    return " ".join(w.text for w in words if w.text)


# The model delay of stt-1b-en_fr (0.5 s), the model with pause heads: the step clock's
# default until an `EndWord` on the connection measures it.
DEFAULT_DELAY_STEPS = 6
_MAX_DELAY_STEPS = 64

# A frame whose peak stays under this (about -50 dBFS of float audio) carries no word: 10 dB
# below the agent's "voiced" rule, so that soft word endings still count as voice.
VOICED_PEAK = 0.003
# Steps past a frame after which its words are surely out: the step that completes a word
# (its Word comes after that Step), one to receive it, and one for a word with more text
# pieces than frames.
_WORD_OUT_STEPS = 3


def flush_target(
    *,
    sent_frames: int,
    delay_steps: int,
    voiced_frames: int | None,
    last_word_start: float | None,
    to_voice: bool,
) -> int:
    """The `Step` count after which every word of an ended turn is out.

    The full rule steps through all the audio sent and the model delay, as Unmute does. After
    a pause most of that is silence, whose transcript is empty; with `to_voice`, the flush
    only reaches past the last voiced frame (`voiced_frames` frames on the server's timeline
    hold all the voice). A word that started where no voice was heard means the voice gate
    is wrong for this microphone: the full rule then applies.
    """
    full = sent_frames + delay_steps + 2
    if not to_voice or voiced_frames is None:
        return full
    if last_word_start is not None and last_word_start >= voiced_frames * FRAME_DURATION:
        return full
    return min(full, voiced_frames + delay_steps + _WORD_OUT_STEPS)


@dataclass
class TurnTracker:
    """One user turn at a time: words open it, a pause (or a forced flush) closes it, and the
    flush completion releases the final transcript with every trailing word.

    One tracker per connection. Words follow Kyutai's semantics (moshi asr.rs): a `Word` comes
    when its closing token does, and its `EndWord` only if that token starts the next word; a
    word that padding follows has no `EndWord` until the next word. The `Step` messages (one
    per 80 ms frame, before the words of their step) are the clock: a word still open one
    step after its `Word` ended with padding, at the time of the step it came in.
    """

    options: TurnOptions = field(default_factory=TurnOptions)
    _words: list[TimedWord] = field(default_factory=list, init=False)
    _ended: bool = field(default=False, init=False)
    _flushing: bool = field(default=False, init=False)
    _forced: bool = field(default=False, init=False)
    _smoothed: float | None = field(default=None, init=False)
    _last_time: float = field(default=0.0, init=False)
    _steps: int = field(default=0, init=False)
    _delay_steps: int = field(default=DEFAULT_DELAY_STEPS, init=False)
    _word_step: int | None = field(default=None, init=False)  # steps when the open Word came

    @property
    def steps(self) -> int:
        """`Step` messages received on this connection: frames the server has processed."""
        return self._steps

    @property
    def delay_steps(self) -> int:
        """Steps between a frame and the text tokens about it (measured, or the default)."""
        return self._delay_steps

    @property
    def speaking(self) -> bool:
        """A turn is open and has not ended yet."""
        return bool(self._words) and not self._ended

    @property
    def flushing(self) -> bool:
        return self._flushing

    @property
    def pause_probability(self) -> float | None:
        return self._smoothed

    @property
    def words(self) -> tuple[TimedWord, ...]:
        return tuple(self._words)

    @property
    def last_word_start(self) -> float | None:
        """Where the open turn's last word starts on the server's timeline."""
        return self._words[-1].start_time if self._words else None

    def on_word(self, text: str, start_time: float) -> list[TurnEvent]:
        text = text.strip()
        if not text:  # the server's first Word is often empty
            return []
        events: list[TurnEvent] = []
        if not self._words:
            events.append(SpeechStarted(start_time=start_time))
        # after the end of speech, words are the trailing ones the flush brings out
        self._close_open_word()
        self._words.append(TimedWord(text=text, start_time=start_time))
        self._word_step = self._steps
        self._last_time = max(self._last_time, start_time)
        events.append(TranscriptUpdated(words=tuple(self._words)))
        return events

    def on_end_word(self, stop_time: float) -> list[TurnEvent]:
        if self._steps:
            # An EndWord comes on the step of its token: that measures the model delay.
            delay = self._steps - round(stop_time / FRAME_DURATION)
            if 0 <= delay <= _MAX_DELAY_STEPS:
                self._delay_steps = delay
        if self._words and self._words[-1].end_time is None:
            last = self._words[-1]
            self._words[-1] = TimedWord(last.text, last.start_time, max(stop_time, last.start_time))
            self._last_time = max(self._last_time, stop_time)
        self._word_step = None
        return []

    def _close_open_word(self) -> None:
        """The open word ended with padding on the step its Word came in. Without a step
        clock (a model without pause heads sends no Step) it waits for its EndWord."""
        if self._word_step is None or not self._steps:
            return
        if self._words and self._words[-1].end_time is None:
            last = self._words[-1]
            stop = max(last.start_time, (self._word_step - self._delay_steps) * FRAME_DURATION)
            self._words[-1] = TimedWord(last.text, last.start_time, stop)
            self._last_time = max(self._last_time, stop)
        self._word_step = None

    def on_step(self, step_idx: int, prs: tuple[float, ...] | list[float]) -> list[TurnEvent]:
        """One `Step`. `step_idx` is not used: servers number it differently."""
        self._steps += 1
        if self._word_step is not None and self._steps > self._word_step:
            self._close_open_word()  # its step is over and no EndWord came
        head = self.options.pause_head
        if head >= len(prs):
            return []  # a model without pause heads: only flushes end turns
        p = float(prs[head])
        a = self.options.smoothing
        self._smoothed = p if self._smoothed is None else a * self._smoothed + (1.0 - a) * p
        if self._steps <= self.options.warmup_steps or self._flushing or not self.speaking:
            return []
        if self.options.use_pause_heads and self._smoothed > self.options.threshold:
            return self._end_turn()
        return []

    def request_flush(self) -> list[TurnEvent]:
        """The framework asked to finalise (flush sentinel, end of input): end an open turn
        now rather than waiting for the pause heads. Words still inside the model delay
        belong to it too, so whatever is heard until the flush completes is finalised."""
        self._forced = True
        if self._flushing:
            return []
        if self.speaking:
            return self._end_turn()
        self._flushing = True
        return [FlushNeeded()]

    def on_flushed(self) -> list[TurnEvent]:
        """The flush completed: every word of the ended turn is out."""
        self._close_open_word()
        forced, self._forced = self._forced, False
        self._flushing = False
        if not self._words or not (self._ended or forced):
            # nothing heard, or a pause flush whose words already started a new turn
            self._ended = False
            return []
        events: list[TurnEvent] = [] if self._ended else [SpeechEnded(self._turn_end_time())]
        events.append(TurnFinished(words=tuple(self._words)))
        self._words.clear()
        self._ended = False
        return events

    def abort(self) -> list[TurnEvent]:
        """The connection is gone: close the open turn with what was heard so far."""
        self._close_open_word()
        events: list[TurnEvent] = []
        if self.speaking:
            events.append(SpeechEnded(end_time=self._turn_end_time()))
        if self._words:
            events.append(TurnFinished(words=tuple(self._words)))
        self._words.clear()
        self._ended = False
        self._flushing = False
        self._forced = False
        return events

    def _end_turn(self) -> list[TurnEvent]:
        self._ended = True
        self._flushing = True
        return [SpeechEnded(end_time=self._turn_end_time()), FlushNeeded()]

    def _turn_end_time(self) -> float:
        last = self._words[-1]
        if last.end_time is not None:
            return last.end_time
        # no EndWord yet: the word lasts at least one frame
        return last.start_time + FRAME_DURATION


@dataclass
class AudioTimeline:
    """Maps the server's audio timeline back to the room's.

    Flushes insert silence the room never heard; to keep the server from drifting behind the
    room, the stream later skips as much quiet room audio. Each discontinuity is an anchor.
    """

    sample_rate: int
    _anchors: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)], init=False)
    server_samples: int = field(default=0, init=False)
    room_samples: int = field(default=0, init=False)

    def sent_room_audio(self, n: int) -> None:
        self.server_samples += n
        self.room_samples += n

    def inserted_silence(self, n: int) -> None:
        self.server_samples += n
        self._anchors.append((self.server_samples, self.room_samples))

    def skipped_room_audio(self, n: int, pending: int = 0) -> None:
        """`n` room samples never sent, after `pending` room samples not sent *yet* (held
        back until a whole frame is ready): the anchor goes after those."""
        self.room_samples += n
        self._anchors.append((self.server_samples + pending, self.room_samples + pending))

    def to_room_time(self, server_time: float) -> float:
        s = round(server_time * self.sample_rate)
        anchor_s, anchor_r = self._anchors[0]
        for a_s, a_r in self._anchors:
            if a_s <= s:
                anchor_s, anchor_r = a_s, a_r
            else:
                # inside inserted silence: clamp to where the room was when it was inserted
                prev_r = anchor_r + (s - anchor_s)
                return min(prev_r, a_r) / self.sample_rate
        return (anchor_r + (s - anchor_s)) / self.sample_rate
