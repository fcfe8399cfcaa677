"""End-of-turn decisions of the Kyutai STT plugin, fed recorded Word/EndWord/Step sequences."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from livekit.plugins.kyutai.protocol import EndWord, Marker, Message, Step, Word
from livekit.plugins.kyutai.turn import (
    AudioTimeline,
    FlushNeeded,
    SpeechEnded,
    SpeechStarted,
    TranscriptUpdated,
    TurnEvent,
    TurnFinished,
    TurnOptions,
    TurnTracker,
    flush_target,
)

LOW = (0.01, 0.02, 0.05, 0.05)


def prs(p2: float) -> tuple[float, float, float, float]:
    """Pause probabilities with head 2 set to ``p2``."""
    return (min(1.0, p2 + 0.2), min(1.0, p2 + 0.1), p2, max(0.0, p2 - 0.1))


def run(tracker: TurnTracker, messages: Iterable[Message]) -> list[TurnEvent]:
    """Replay a recorded sequence; a Marker stands for the flush marker coming back."""
    events: list[TurnEvent] = []
    for msg in messages:
        if isinstance(msg, Word):
            events += tracker.on_word(msg.text, msg.start_time)
        elif isinstance(msg, EndWord):
            events += tracker.on_end_word(msg.stop_time)
        elif isinstance(msg, Step):
            events += tracker.on_step(msg.step_idx, msg.prs)
        elif isinstance(msg, Marker):
            events += tracker.on_flushed()
    return events


def kinds(events: list[TurnEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def steps(start: int, values: list[float]) -> list[Step]:
    return [Step(step_idx=start + i, prs=prs(v)) for i, v in enumerate(values)]


# A recording shaped like stt-1b-en_fr on Kyutai's Rust server for "hello there" followed by a
# long pause. The n-th Step of the connection comes before the words of step n; a token of step
# n is at (n - 6) * 0.08 s; the step indices are the server's own (it counts across its batch).
HELLO_THERE: list[Message] = [
    Word("", 0.0),  # the server's empty first word
    *steps(5000, [0.9] * 14),  # the lead silence: high pause probability but no turn yet
    *steps(5014, [0.1] * 11),
    Word("hello", 1.12),  # closed by the 0 that starts "there", on step 25 (1.52 s)
    EndWord(1.52),
    *steps(5025, [0.1] * 5),
    Word("there", 1.52),  # closed by padding on step 30: no EndWord until a next word
    *steps(5030, [0.3, 0.5, 0.7, 0.9]),
]


def test_pause_ends_the_turn_and_flush_releases_the_final() -> None:
    tracker = TurnTracker()
    events = run(tracker, HELLO_THERE)
    assert kinds(events) == [
        "SpeechStarted",
        "TranscriptUpdated",
        "TranscriptUpdated",
        "SpeechEnded",
        "FlushNeeded",
    ]
    assert events[0] == SpeechStarted(start_time=1.12)
    assert isinstance(events[2], TranscriptUpdated) and events[2].text == "hello there"
    # "there" ended on the step its Word came with: (30 - 6) * 0.08 s
    assert events[3] == SpeechEnded(end_time=pytest.approx(1.92))
    assert tracker.flushing and not tracker.speaking
    assert tracker.steps == 34 and tracker.delay_steps == 6

    final = run(tracker, [Marker(1)])
    assert kinds(final) == ["TurnFinished"]
    done = final[0]
    assert isinstance(done, TurnFinished)
    assert done.text == "hello there"
    assert [(w.text, w.start_time, w.end_time) for w in done.words] == [
        ("hello", 1.12, 1.52),
        ("there", 1.52, pytest.approx(1.92)),
    ]
    assert (done.start_time, done.end_time) == (1.12, pytest.approx(1.92))
    assert not tracker.flushing and tracker.words == ()


def test_a_late_end_word_does_not_stretch_a_word_padding_ended() -> None:
    """Kyutai sends a padding-ended word's EndWord when the next word starts: that time
    includes the pause, the step clock does not."""
    tracker = TurnTracker()
    run(tracker, [*steps(0, [0.1] * 20), Word("so", 0.8), *steps(20, [0.3] * 4)])
    # the 0 token of the next word, 4 steps later, ends "so" for Kyutai
    run(tracker, [EndWord(1.44), Word("anyway", 1.44), EndWord(1.6)])
    assert [(w.text, w.end_time) for w in tracker.words] == [
        ("so", pytest.approx(1.12)),
        ("anyway", 1.6),
    ]


def test_the_model_delay_is_measured_from_end_words() -> None:
    tracker = TurnTracker()
    # a model with a 2.5 s delay (31 steps): an EndWord at 0.4 s comes on step 36
    run(tracker, [*steps(0, [0.1] * 36), Word("hey", 0.0), EndWord(0.4)])
    assert tracker.delay_steps == 31
    run(tracker, [*steps(36, [0.1] * 4), Word("you", 0.4), *steps(40, [0.1])])
    assert tracker.words[-1].end_time == pytest.approx((40 - 31) * 0.08)
    # nonsense (an EndWord from the future) leaves the measure alone
    run(tracker, [EndWord(99.0)])
    assert tracker.delay_steps == 31


def test_without_steps_words_wait_for_their_end_word() -> None:
    tracker = TurnTracker(TurnOptions(warmup_steps=0))
    run(tracker, [Word("no", 0.4), Word("steps", 0.6)])
    assert [w.end_time for w in tracker.words] == [None, None]
    run(tracker, [EndWord(0.9)])
    assert tracker.words[-1].end_time == 0.9


def test_short_hesitation_does_not_end_the_turn() -> None:
    tracker = TurnTracker()
    seq: list[Message] = [
        *steps(0, [0.2] * 12),
        Word("so", 1.0),
        EndWord(1.2),
        # "so… um" — the probability climbs but stays under 0.6, then drops as speech resumes
        *steps(12, [0.3, 0.45, 0.55, 0.58, 0.4, 0.1]),
        Word("anyway", 1.9),
        *steps(18, [0.05, 0.1]),
    ]
    events = run(tracker, seq)
    assert "SpeechEnded" not in kinds(events)
    assert tracker.speaking
    assert isinstance(events[-1], TranscriptUpdated) and events[-1].text == "so anyway"


def test_smoothing_ignores_a_single_spike() -> None:
    seq: list[Message] = [*steps(0, [0.0] * 12), Word("well", 1.0), *steps(12, [0.1, 0.95, 0.1])]
    assert "SpeechEnded" in kinds(run(TurnTracker(TurnOptions(smoothing=0.0)), seq))
    assert "SpeechEnded" not in kinds(run(TurnTracker(TurnOptions(smoothing=0.7)), seq))


def test_words_arriving_during_the_flush_belong_to_the_turn() -> None:
    tracker = TurnTracker()
    seq: list[Message] = [
        *steps(0, [0.1] * 20),
        Word("what", 1.0),
        EndWord(1.12),
        *steps(20, [0.1] * 3),
        Word("time", 1.12),  # padding-ended on step 23
        *steps(23, [0.2, 0.8]),  # the turn ends while "is it" is still inside the model delay
        Word("is", 1.44),
        EndWord(1.52),
        *steps(25, [0.9, 0.9]),  # no second end of speech while flushing
        Word("it", 1.52),
        EndWord(1.68),
        Marker(7),
    ]
    events = run(tracker, seq)
    assert kinds(events) == [
        "SpeechStarted",
        "TranscriptUpdated",
        "TranscriptUpdated",
        "SpeechEnded",
        "FlushNeeded",
        "TranscriptUpdated",
        "TranscriptUpdated",
        "TurnFinished",
    ]
    # the end of speech is the end of the last word heard when the pause was detected
    assert events[3] == SpeechEnded(end_time=pytest.approx((23 - 6) * 0.08))
    done = events[-1]
    assert isinstance(done, TurnFinished) and done.text == "what time is it"
    assert done.end_time == 1.68


def test_next_turn_starts_after_the_flush() -> None:
    tracker = TurnTracker(TurnOptions(warmup_steps=0))
    first = run(tracker, [Word("yes", 0.5), EndWord(0.7), *steps(10, [0.9]), Marker(1)])
    assert kinds(first)[-1] == "TurnFinished"
    second = run(tracker, [Word("no", 3.0), EndWord(3.2), *steps(40, [0.95]), Marker(2)])
    assert kinds(second) == [
        "SpeechStarted",
        "TranscriptUpdated",
        "SpeechEnded",
        "FlushNeeded",
        "TurnFinished",
    ]
    assert isinstance(second[-1], TurnFinished) and second[-1].text == "no"


def test_empty_turn_emits_nothing() -> None:
    tracker = TurnTracker(TurnOptions(warmup_steps=0))
    # silence: pause heads high, only empty words: no start, no end, no final
    events = run(tracker, [Word("", 0.0), Word("  ", 0.1), *steps(0, [0.99] * 30), Marker(1)])
    assert events == []
    # a flush asked for while nobody speaks completes without a transcript
    assert kinds(tracker.request_flush()) == ["FlushNeeded"]
    assert tracker.on_flushed() == []
    assert not tracker.flushing


def test_warmup_steps_are_ignored() -> None:
    tracker = TurnTracker()  # 12 steps of warm-up, as Unmute
    seq: list[Message] = [Word("hi", 0.1), *steps(0, [0.99] * 12)]
    assert "SpeechEnded" not in kinds(run(tracker, seq))
    assert kinds(run(tracker, steps(12, [0.99]))) == ["SpeechEnded", "FlushNeeded"]


def test_warmup_counts_steps_of_the_connection_not_the_servers_numbers() -> None:
    """Kyutai's Rust server numbers steps across its batch: a connection to a server that has
    run for a while starts at 238, 822, ... The unreliable first second is still ignored."""
    tracker = TurnTracker()
    seq: list[Message] = [Word("hi", 0.1), *steps(10_000, [0.99] * 12)]
    assert "SpeechEnded" not in kinds(run(tracker, seq))
    assert kinds(run(tracker, steps(10_012, [0.99]))) == ["SpeechEnded", "FlushNeeded"]


def test_configurable_head_and_threshold() -> None:
    warm = steps(0, [0.0] * 12)
    seq: list[Message] = [*warm, Word("hi", 0.1), Step(step_idx=20, prs=(0.9, 0.5, 0.2, 0.1))]
    assert "SpeechEnded" not in kinds(run(TurnTracker(), seq))
    assert "SpeechEnded" in kinds(run(TurnTracker(TurnOptions(pause_head=0)), seq))
    assert "SpeechEnded" in kinds(run(TurnTracker(TurnOptions(threshold=0.15)), seq))


def test_model_without_pause_heads_relies_on_flushes() -> None:
    tracker = TurnTracker(TurnOptions(warmup_steps=0))
    events = run(tracker, [Word("hi", 0.1), Step(step_idx=30, prs=())])
    assert kinds(events) == ["SpeechStarted", "TranscriptUpdated"]
    events = tracker.request_flush()
    assert kinds(events) == ["SpeechEnded", "FlushNeeded"]
    assert tracker.request_flush() == []  # one flush at a time
    assert kinds(tracker.on_flushed()) == ["TurnFinished"]


def test_abort_closes_the_open_turn() -> None:
    tracker = TurnTracker()
    run(tracker, [Word("call", 0.4), EndWord(0.6), Word("me", 0.7)])
    events = tracker.abort()
    assert kinds(events) == ["SpeechEnded", "TurnFinished"]
    assert isinstance(events[1], TurnFinished) and events[1].text == "call me"
    assert tracker.abort() == []


def test_flush_request_during_pause_flush_is_ignored() -> None:
    tracker = TurnTracker(TurnOptions(warmup_steps=0))
    run(tracker, [Word("ok", 0.1), *steps(5, [0.9])])
    assert tracker.request_flush() == []
    assert kinds(tracker.on_flushed()) == ["TurnFinished"]


@pytest.mark.parametrize("bad", [{"pause_head": 4}, {"threshold": 1.5}, {"smoothing": 1.0}])
def test_options_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TurnOptions(**bad)  # type: ignore[arg-type]


def test_flush_needed_is_a_value() -> None:
    assert FlushNeeded() == FlushNeeded()


# --- audio timeline -----------------------------------------------------------------------


def test_timeline_removes_inserted_silence_and_skipped_audio() -> None:
    tl = AudioTimeline(sample_rate=100)
    tl.sent_room_audio(200)  # room 0..2 s == server 0..2 s
    tl.inserted_silence(50)  # server 2..2.5 s is flush silence
    tl.sent_room_audio(100)  # room 2..3 s == server 2.5..3.5 s
    tl.skipped_room_audio(50)  # room 3..3.5 s never sent
    tl.sent_room_audio(100)  # room 3.5..4.5 s == server 3.5..4.5 s
    assert tl.to_room_time(1.0) == 1.0
    assert tl.to_room_time(2.25) == 2.0  # inside the silence: clamped
    assert tl.to_room_time(3.0) == 2.5
    assert tl.to_room_time(4.0) == 4.0
    assert (tl.server_samples, tl.room_samples) == (450, 450)


def test_forced_flush_finalises_words_that_were_still_in_flight() -> None:
    # end of input arrives before the model has emitted the last words
    tracker = TurnTracker()
    assert kinds(tracker.request_flush()) == ["FlushNeeded"]
    events = run(tracker, [Word("bye", 1.0), EndWord(1.2), Marker(1)])
    assert kinds(events) == ["SpeechStarted", "TranscriptUpdated", "SpeechEnded", "TurnFinished"]
    assert events[2] == SpeechEnded(end_time=1.2)


def test_without_pause_heads_only_a_flush_ends_the_turn() -> None:
    tracker = TurnTracker(TurnOptions(use_pause_heads=False))
    events = run(tracker, HELLO_THERE)
    assert "SpeechEnded" not in kinds(events) and "TurnFinished" not in kinds(events)
    assert "SpeechStarted" in kinds(events)
    flushed = tracker.request_flush()
    assert "SpeechEnded" in kinds(flushed) or "FlushNeeded" in kinds(flushed)


def test_timeline_skip_after_samples_still_held_back() -> None:
    tl = AudioTimeline(sample_rate=100)
    tl.sent_room_audio(100)  # room 0..1 s
    tl.skipped_room_audio(300, pending=20)  # room 1..1.2 s held back, 1.2..4.2 s skipped
    tl.sent_room_audio(100)  # the held-back 0.2 s and room 4.2..5 s: server 1..2 s
    assert tl.to_room_time(1.1) == pytest.approx(1.1)
    assert tl.to_room_time(1.5) == pytest.approx(4.5)
    assert (tl.server_samples, tl.room_samples) == (200, 500)


def test_a_flush_to_voice_reaches_past_the_last_voiced_frame_only() -> None:
    # 40 frames sent, voice in the first 15, a 6-step delay: the full rule steps through the
    # whole pause; the voice rule stops 3 steps past the voice's words (15 + 6 + 3).
    common = {"sent_frames": 40, "delay_steps": 6, "last_word_start": 0.5}
    assert flush_target(**common, voiced_frames=15, to_voice=False) == 48
    assert flush_target(**common, voiced_frames=15, to_voice=True) == 24
    # never further than the full rule (a microphone whose noise counts as voice)
    assert flush_target(**common, voiced_frames=40, to_voice=True) == 48
    # nothing voiced yet: the full rule
    assert flush_target(**common, voiced_frames=None, to_voice=True) == 48


def test_a_word_where_no_voice_was_heard_gets_the_full_flush() -> None:
    # The last word starts at 1.28 s (frame 16), after the last voiced frame: speech quieter
    # than the voice gate. Its words may be anywhere, so the whole pause is stepped through.
    assert (
        flush_target(
            sent_frames=40, delay_steps=6, voiced_frames=15, last_word_start=1.28, to_voice=True
        )
        == 48
    )
