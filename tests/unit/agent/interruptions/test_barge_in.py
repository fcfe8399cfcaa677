"""Fast barge-in: the energy onset detector and the gate's provisional pauses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.interruptions import room_output
from agent.interruptions.barge_in import FastBargeIn, OnsetDetector, OnsetOptions
from agent.ops.metrics import FAST_PAUSES

RATE = 24000
BLOCK = RATE // 100


def tone(seconds: float, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise at an RMS level of `dbfs`."""
    return (rng.normal(0, 1, int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def onset_blocks(signal: np.ndarray, **options: float) -> list[int]:
    """Indices of the 10 ms blocks that completed an onset (pushed block by block)."""
    detector = OnsetDetector(OnsetOptions(**options))
    starts = range(0, signal.size, BLOCK)
    return [i for i, s in enumerate(starts) if detector.push(signal[s : s + BLOCK], RATE)]


def test_a_quiet_fricative_over_silence_is_an_onset_after_20_ms() -> None:
    rng = np.random.default_rng(1)
    # the "s" of "stop" in our espeak fixture is ~-35 dBFS: Silero does not call it speech
    signal = np.concatenate([silence(0.5), tone(0.12, -35, rng), tone(0.3, -14, rng)])
    assert onset_blocks(signal) == [51]  # blocks 50 and 51 are loud: 20 ms


def test_one_loud_block_is_not_an_onset() -> None:
    rng = np.random.default_rng(2)
    signal = np.concatenate([silence(0.3), tone(0.01, -10, rng), silence(0.3)])
    assert onset_blocks(signal) == []


def test_sound_below_the_absolute_minimum_is_ignored() -> None:
    rng = np.random.default_rng(3)
    signal = np.concatenate([silence(0.3), tone(0.5, -50, rng)])
    assert onset_blocks(signal) == []


def test_a_steady_background_is_learnt_and_speech_above_it_still_counts() -> None:
    rng = np.random.default_rng(4)
    noisy_room = tone(2.0, -38, rng)  # above the absolute minimum from the very start
    speech = tone(0.3, -20, rng) + tone(0.3, -38, rng)
    assert onset_blocks(np.concatenate([noisy_room, speech])) == [201]


def test_a_background_that_swells_slowly_is_not_an_onset() -> None:
    rng = np.random.default_rng(5)
    seconds = 4.0
    ramp_db = np.linspace(-60, -36, int(seconds * RATE))  # 6 dB/s, a fan spinning up
    signal = (rng.normal(0, 1, ramp_db.size) * 10 ** (ramp_db / 20)).astype(np.float32)
    assert onset_blocks(signal) == []


def test_the_margin_decides_how_loud_an_onset_must_be() -> None:
    rng = np.random.default_rng(6)
    signal = np.concatenate([tone(1.0, -50, rng), tone(0.3, -40, rng)])  # +10 dB
    assert onset_blocks(signal, margin_db=15) == []
    assert onset_blocks(signal, margin_db=6) == [101]


def test_sustained_sound_is_one_onset_and_the_next_utterance_another() -> None:
    rng = np.random.default_rng(7)
    utterance = tone(0.8, -20, rng)
    signal = np.concatenate([silence(0.5), utterance, silence(0.5), utterance])
    assert onset_blocks(signal) == [51, 181]


def test_reset_forgets_the_floor() -> None:
    rng = np.random.default_rng(8)
    detector = OnsetDetector()
    detector.push(tone(1.0, -30, rng), RATE)
    assert detector.floor_dbfs is not None and detector.floor_dbfs > -40
    detector.reset()
    assert detector.floor_dbfs is None


@settings(max_examples=40, deadline=None)
@given(
    chunks=st.lists(st.integers(min_value=1, max_value=2400), min_size=1, max_size=30),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_how_the_stream_is_cut_into_frames_does_not_matter(chunks: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    signal = np.concatenate(
        [silence(0.2), tone(0.2, -25, rng), silence(0.3), tone(0.05, -30, rng), silence(0.1)]
    )
    reference = OnsetDetector()
    expected = sum(
        reference.push(signal[i : i + BLOCK], RATE) for i in range(0, signal.size, BLOCK)
    )
    detector = OnsetDetector()
    got, pos, k = 0, 0, 0
    while pos < signal.size:
        size = chunks[k % len(chunks)]
        got += detector.push(signal[pos : pos + size], RATE)
        pos, k = pos + size, k + 1
    assert got == expected == 2
    assert detector.floor_dbfs == reference.floor_dbfs


# --- the gate: provisional pauses and who lifts them -----------------------------------------


class FakeSpeech:
    allow_interruptions = True
    interrupted = False


class FakeSession:
    def __init__(self) -> None:
        self.agent_state = "speaking"
        self.user_state = "listening"
        self.current_speech: FakeSpeech | None = FakeSpeech()


class FakeChain:
    """The session's output (top of the chain) and the room sink at its end: a pause or resume
    of the top reaches the sink, as LiveKit's chain does, synchronously."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.sink = SimpleNamespace(pause=self._sink_pause, resume=self._sink_resume)
        self.fail_pause = False

    def _sink_pause(self) -> None:
        if self.fail_pause:
            raise RuntimeError("the output is gone")
        self.calls.append("pause")

    def _sink_resume(self) -> None:
        self.calls.append("resume")

    def pause(self) -> None:
        self.sink.pause()

    def resume(self) -> None:
        self.sink.resume()


def loud(seconds: float = 0.05) -> np.ndarray:
    return tone(seconds, -20, np.random.default_rng(11))


def gate(hold_s: float = 0.05) -> tuple[FastBargeIn, FakeSession, FakeChain]:
    session, chain = FakeSession(), FakeChain()
    fast = FastBargeIn(session, hold_s=hold_s)
    fast.attach(chain)
    room_output.observe(chain.sink, on_pause=fast.on_sink_pause, on_resume=fast.on_sink_resume)
    fast.on_user_audio(silence(0.3), RATE)  # the noise floor
    return fast, session, chain


def outcome(name: str) -> float:
    value = FAST_PAUSES.labels(outcome=name)._value.get()  # type: ignore[attr-defined]
    return float(value)


async def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_an_unconfirmed_onset_is_released_and_spends_the_gate_for_this_reply() -> None:
    fast, session, chain = gate()
    released = outcome("released")
    fast.on_user_audio(loud(), RATE)
    assert chain.calls == ["pause"]
    await wait_until(lambda: chain.calls == ["pause", "resume"])
    assert outcome("released") == released + 1
    # a second onset in the same reply does not pause it again…
    fast.on_user_audio(silence(0.2), RATE)
    fast.on_user_audio(loud(), RATE)
    assert chain.calls == ["pause", "resume"]
    # …the next reply may be paused
    session.current_speech = FakeSpeech()
    fast.on_user_audio(silence(0.2), RATE)
    fast.on_user_audio(loud(), RATE)
    assert chain.calls == ["pause", "resume", "pause"]
    fast.close()


async def test_a_pause_by_livekit_takes_over_and_the_gate_never_resumes() -> None:
    fast, _session, chain = gate()
    confirmed = outcome("confirmed")
    fast.on_user_audio(loud(), RATE)
    chain.sink.pause()  # LiveKit's VAD confirmed speech
    await wait_until(lambda: outcome("confirmed") == confirmed + 1)
    assert chain.calls == ["pause", "pause"]  # no resume from the gate: LiveKit decides


async def test_a_resume_by_livekit_ends_our_pause_without_counting_it() -> None:
    fast, _session, chain = gate(hold_s=0.02)
    confirmed, released = outcome("confirmed"), outcome("released")
    fast.on_user_audio(loud(), RATE)
    chain.sink.resume()  # LiveKit resumed playout on its own, confirming nothing
    await asyncio.sleep(0.06)  # past the hold: nothing may happen any more
    assert chain.calls == ["pause", "resume"]
    assert (outcome("confirmed"), outcome("released")) == (confirmed, released)
    # and the gate is free to pause again for this reply
    fast.on_user_audio(silence(0.2), RATE)
    fast.on_user_audio(loud(), RATE)
    assert chain.calls == ["pause", "resume", "pause"]
    fast.close()


async def test_while_the_vad_hears_the_user_the_pause_is_held_longer() -> None:
    fast, session, chain = gate(hold_s=0.03)
    fast.on_user_audio(loud(), RATE)
    session.user_state = "speaking"  # Silero's start of speech came, LiveKit has not paused yet
    await asyncio.sleep(0.05)
    assert chain.calls == ["pause"], "resumed over a user the VAD hears"
    # …but not forever: after max_extra_holds more holds the gate lets go
    await wait_until(lambda: chain.calls == ["pause", "resume"], timeout=1.0)


async def test_no_pause_when_the_agent_is_not_speaking_or_may_not_be_interrupted() -> None:
    fast, session, chain = gate()
    session.agent_state = "listening"
    fast.on_user_audio(loud(), RATE)
    session.agent_state = "speaking"
    speech = FakeSpeech()
    speech.allow_interruptions = False
    session.current_speech = speech
    fast.on_user_audio(silence(0.2), RATE)
    fast.on_user_audio(loud(), RATE)
    assert chain.calls == []


async def test_a_failing_pause_leaves_the_gate_usable() -> None:
    fast, _session, chain = gate()
    chain.fail_pause = True
    fast.on_user_audio(loud(), RATE)  # logged, not raised
    assert chain.calls == ["resume"]
    chain.fail_pause = False
    fast.on_user_audio(silence(0.2), RATE)
    fast.on_user_audio(loud(), RATE)
    assert chain.calls == ["resume", "pause"]
    fast.close()


async def test_close_cancels_a_pending_release() -> None:
    fast, _session, chain = gate(hold_s=0.02)
    fast.on_user_audio(loud(), RATE)
    fast.close()
    await asyncio.sleep(0.05)
    assert chain.calls == ["pause"]
