from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.metrics import Metrics
from inference.profiles import get_profile
from inference.stt_engine import SttEngine
from inference.tiny import TINY_VOICES
from inference.tts_engine import TtsEngine


@pytest.fixture(scope="module")
def stt(tiny_cache: Path) -> SttEngine:
    return SttEngine(get_profile("tiny", tiny_cache), batch_size=3, device="cpu", metrics=Metrics())


@pytest.fixture(scope="module")
def tts(tiny_cache: Path) -> TtsEngine:
    return TtsEngine(
        get_profile("tiny", tiny_cache),
        batch_size=2,
        device="cpu",
        metrics=Metrics(),
        default_voice=TINY_VOICES[0],
    )


def _drain(session: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while not session.queue.empty():
        item = session.queue.get_nowait()
        if item is not None:
            out.extend(item)
    return out


def _run(engine: Any) -> int:
    """Step synchronously (no thread) until no slot has work; returns the number of steps."""
    n = 0
    while True:
        if not engine.tick():
            return n
        n += 1


async def test_stt_slots_reset_and_freeze(stt: SttEngine) -> None:
    loop = asyncio.get_running_loop()
    a = stt.acquire(loop)
    b = stt.acquire(loop)
    assert a is not None and b is not None and (a.slot, b.slot) == (0, 1)
    assert stt.open_slots == 2
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(1920 * 5)).astype(np.float32)
    a.push_audio(audio)
    # b gets no audio: it is frozen (exec mask off) while a runs.
    _run(stt)
    await asyncio.sleep(0)
    steps_a = [m for m in _drain(a) if m["type"] == "Step"]
    assert [m["step_idx"] for m in steps_a] == [0, 1, 2, 3, 4]
    assert all(len(m["prs"]) == 4 for m in steps_a)
    assert b.frames_done == 0 and _drain(b) == []
    state = stt.lm_gen._streaming_state
    assert state is not None
    offsets = state.offsets.tolist()
    assert offsets[0] == 6 and offsets[1] == 1  # b ran its lead frame only

    # A new session in a freed slot starts from a reset state and gives the same output as a's
    # first run for the same audio (greedy decoding, per-slot state).
    stt.release(a)
    c = stt.acquire(loop)
    assert c is not None and c.slot == 0
    c.push_audio(audio)
    _run(stt)
    await asyncio.sleep(0)
    steps_c = [m for m in _drain(c) if m["type"] == "Step"]
    np.testing.assert_allclose([m["prs"] for m in steps_c], [m["prs"] for m in steps_a], atol=1e-5)
    assert state.offsets.tolist()[0] == 6
    stt.release(b)
    stt.release(c)
    assert stt.open_slots == 0


async def test_stt_full_batch(stt: SttEngine) -> None:
    loop = asyncio.get_running_loop()
    held = [stt.acquire(loop) for _ in range(3)]
    assert all(s is not None for s in held)
    assert stt.acquire(loop) is None
    for s in held:
        assert s is not None
        stt.release(s)


async def _speak(tts: TtsEngine, text: str) -> tuple[np.ndarray, list[dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    s = tts.acquire(loop)
    assert s is not None
    for w in text.split():
        s.push_text(w)
    s.push_eos()
    _run(tts)
    await asyncio.sleep(0)
    msgs = _drain(s)
    assert s.finished
    tts.release(s)
    audio = np.concatenate(
        [np.asarray(m["pcm"], dtype=np.float32) for m in msgs if m["type"] == "Audio"]
    )
    return audio, [m for m in msgs if m["type"] == "Text"]


async def test_tts_audio_and_words(tts: TtsEngine) -> None:
    torch.manual_seed(0)
    audio, texts = await _speak(tts, "hello world this is a test")
    assert audio.size % 1920 == 0 and audio.size >= 1920 * 10
    frames = audio.reshape(-1, 1920)
    rms = np.sqrt((frames**2).mean(axis=1))
    assert rms.min() > 0.02
    # Frames differ from each other (not a repeated pattern).
    assert np.abs(np.diff(frames, axis=0)).mean() > 0.01
    assert [t["text"] for t in texts] == ["hello", "world", "this", "is", "a", "test"]
    assert all(t["stop_s"] >= t["start_s"] for t in texts)
    other, _ = await _speak(tts, "bonjour tout le monde")
    n = min(other.size, audio.size)
    assert np.abs(other[:n] - audio[:n]).mean() > 0.01


async def test_tts_waits_for_lookahead(tts: TtsEngine) -> None:
    loop = asyncio.get_running_loop()
    s = tts.acquire(loop)
    assert s is not None
    s.push_text("hello")
    assert _run(tts) == 0  # one word is not enough for the lookahead stream
    s.push_text("brave new")
    assert _run(tts) > 0  # three words: speech starts, then waits again
    assert not s.finished
    s.push_eos()
    _run(tts)
    assert s.finished
    tts.release(s)


async def test_tts_words_arriving_between_idle_ticks_are_kept(tiny_cache: Path) -> None:
    """A new slot's reset is handed back while it waits for its lookahead words; its words
    queued meanwhile must survive, and the output equals that of all words sent at once."""
    engine = TtsEngine(
        get_profile("tiny", tiny_cache),
        batch_size=2,
        device="cpu",
        metrics=Metrics(),
        temp=0.0,
        default_voice=TINY_VOICES[0],
    )
    loop = asyncio.get_running_loop()
    words = "hello world this is a test".split()

    async def speak(trickle: bool) -> tuple[list[Any], list[str]]:
        s = engine.acquire(loop)
        assert s is not None
        for w in words:
            s.push_text(w)
            if trickle:
                engine.tick()  # no work yet for the first two words: the reset is handed back
        s.push_eos()
        _run(engine)
        await asyncio.sleep(0)
        msgs = _drain(s)
        engine.release(s)
        return (
            [m["pcm"] for m in msgs if m["type"] == "Audio"],
            [m["text"] for m in msgs if m["type"] == "Text"],
        )

    audio_a, text_a = await speak(trickle=False)
    audio_b, text_b = await speak(trickle=True)
    assert text_a == text_b == words
    np.testing.assert_allclose(np.array(audio_b), np.array(audio_a), atol=1e-5)


def test_voice_checks(tts: TtsEngine) -> None:
    from inference.voices import UnknownVoice, embedding_from_message

    with pytest.raises(UnknownVoice, match="NaN"):
        embedding_from_message([float("nan")] * 4, [1, 2, 2])
    with pytest.raises(UnknownVoice, match="shape"):
        tts.check_voice(torch.zeros(1, 8, 4))
    ok = torch.zeros(1, 512, 3)
    assert tts.check_voice(ok) is ok
