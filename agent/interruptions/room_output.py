"""Every patch of LiveKit's internals, in one place: the room end of the agent's audio chain.

Written against livekit-agents == LIVEKIT_AGENTS_PINNED (agent/pyproject.toml pins it). The
room output (`voice.room_io._output._ParticipantAudioOutput`) owns the AudioSource that feeds
the room, but offers no hook when it is paused or resumed, and on a pause keeps ~0.2 s of the
agent's audio queued in that source. Two things are patched onto that one object, in a fixed
order (the queue drop first, then the observers):

- the queue is dropped as soon as the output pauses (`drop_queue_on_pause`);
- observers hear about every pause and resume, whoever made it (`observe`): the fast barge-in
  gate needs to know when LiveKit takes over a pause it started.

The agent's captions have the same kind of end: the transcript synchroniser releases each word
to the room's transcription output as its audio plays. `observe_heard_text` wraps that last
output, so the face reads the words when the listener hears them (not when the TTS aligns them,
which can be seconds earlier).

`patch(session, ...)` checks that the object still has what is patched and, if not, logs what
is missing and leaves LiveKit's queue alone: a version bump has exactly one place to look.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from agent.log import logger

LIVEKIT_AGENTS_PINNED = "1.8.9"
# What drop_queue_on_pause reads and writes on the room output, besides pause().
_QUEUE_INTERNALS = (
    "_audio_source",
    "_report_run",
    "_source_pushed_duration",
    "_source_discarded_duration",
    "_audio_buf",
    "_flush_task",
)


class Pausable(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...


def room_sink(session: Any) -> Any | None:
    """The room output at the end of the session's audio chain (it owns the AudioSource)."""
    output = session.output.audio
    while output is not None and not hasattr(output, "_audio_source"):
        output = getattr(output, "next_in_chain", None)
    return output


def missing_internals(sink: Any) -> list[str]:
    """What `drop_queue_on_pause` needs and `sink` lacks (empty on the pinned version)."""
    missing = [name for name in _QUEUE_INTERNALS if not hasattr(sink, name)]
    source = getattr(sink, "_audio_source", None)
    if source is not None and not hasattr(source, "clear_queue"):
        missing.append("_audio_source.clear_queue")
    return missing


def drop_queue_on_pause(sink: Any) -> None:
    """On a pause, drop the AudioSource queue at once instead of when the forwarding loop's
    next frame fits in (up to 50 ms later), so the listener hears the agent stop sooner.

    The drop is booked as LiveKit books its own (discarded, and a resumed run starts past it).
    As with LiveKit's own drop, the transcript synchroniser (which counts paused wall-clock
    time, not samples) is not told: after a pause that is lifted, the heard text may lag the
    audio by up to the dropped ~0.2 s. Once the whole reply is queued (nothing left to forward,
    playout awaited) the queue is the reply's tail: dropping it would end the reply as fully
    played, unheard, with no resume; there the tail plays out, as LiveKit does."""
    source = sink._audio_source
    original_pause = sink.pause

    def pause() -> None:
        original_pause()
        flush = sink._flush_task
        if flush is not None and not flush.done() and sink._audio_buf.empty():
            return  # only the reply's tail is queued: see above
        queued = source.queued_duration
        if queued > 0:
            sink._source_discarded_duration += queued
            pushed = sink._source_pushed_duration
            sink._report_run(offset=pushed - queued, ended_at=time.time(), resumes_at=pushed)
            source.clear_queue()

    sink.pause = pause


def observe(sink: Pausable, *, on_pause: Callable[[], None], on_resume: Callable[[], None]) -> None:
    """Call `on_pause` / `on_resume` after every pause / resume of `sink`."""
    original_pause, original_resume = sink.pause, sink.resume

    def pause() -> None:
        original_pause()
        on_pause()

    def resume() -> None:
        original_resume()
        on_resume()

    sink.pause, sink.resume = pause, resume  # type: ignore[method-assign]


def patch(
    session: Any, *, observers: list[tuple[Callable[[], None], Callable[[], None]]]
) -> Any | None:
    """Patch the session's room output (queue drop, then observers); the patched sink, or None
    when there is none. A part whose internals changed is skipped, LiveKit's behaviour kept."""
    sink = room_sink(session)
    if sink is None:
        logger.warning("no room audio output found: barge-in keeps LiveKit's default latency")
        return None
    missing = missing_internals(sink)
    if missing:
        logger.warning(
            "the room audio output of livekit-agents %s is not the one of %s (no %s): "
            "pauses keep their queue",
            _installed_version(),
            LIVEKIT_AGENTS_PINNED,
            ", ".join(missing),
        )
    else:
        drop_queue_on_pause(sink)
    for on_pause, on_resume in observers:
        observe(sink, on_pause=on_pause, on_resume=on_resume)
    return sink


def room_text_sink(session: Any) -> Any | None:
    """The last output of the session's agent-transcription chain: it publishes what the
    synchroniser releases, as it is played."""
    output = session.output.transcription
    while output is not None and getattr(output, "next_in_chain", None) is not None:
        output = output.next_in_chain
    return output


def observe_heard_text(
    session: Any, *, on_text: Callable[[str], None], on_flush: Callable[[], None]
) -> bool:
    """Call `on_text` with every agent caption delta as it is played, and `on_flush` at the end
    of each segment; False (logged) when the session has no transcription output."""
    sink = room_text_sink(session)
    if sink is None:
        logger.warning("no agent transcription output: the face reads no words")
        return False
    original_capture, original_flush = sink.capture_text, sink.flush

    async def capture_text(text: str) -> None:
        await original_capture(text)
        _safely(on_text, text)

    def flush() -> None:
        original_flush()
        _safely(on_flush)

    sink.capture_text, sink.flush = capture_text, flush
    return True


def _safely(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # an observer's bug must not cost the room its captions
        logger.exception("transcription observer failed")


def _installed_version() -> str:
    try:
        return version("livekit-agents")
    except PackageNotFoundError:
        return "?"
