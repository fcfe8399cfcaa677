"""The Moshi engine stepped synchronously (no clock thread): batching equivalence, the input
queue under underrun and overrun, per-slot hold and talkativeness, warm-up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.speech import read_wav, speech_wav
from inference.metrics import Metrics
from inference.moshi_engine import TRIM_WINDOW_STEPS, MoshiEngine, MoshiSession
from inference.profiles import get_profile
from inference.warmup import warm_engine

FRAME = 1920
LOUD = 0.03  # decoded RMS above which Moshi's frame counts as speech (tiny Mimi: ~0.1 vs ~0.005)


@pytest.fixture(scope="module")
def engine(tiny_cache: Path) -> MoshiEngine:
    return MoshiEngine(
        get_profile("tiny", tiny_cache), batch_size=4, device="cpu", metrics=Metrics()
    )


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    pcm, rate = read_wav(speech_wav("could you tell me the time please", lead_silence_s=0.0))
    assert rate == 24000
    return pcm


@dataclass
class Record:
    """What one session got: per output step, its text piece and decoded RMS."""

    texts: list[str] = field(default_factory=list)
    pcm: list[np.ndarray] = field(default_factory=list)
    markers: list[tuple[int, int]] = field(default_factory=list)  # (marker id, step)

    def collect(self, msgs: list[dict[str, Any]] | None) -> None:
        step_text = ""
        for m in msgs or ():
            if m["type"] == "Audio":
                assert m["step_idx"] == len(self.pcm)
                self.pcm.append(np.asarray(m["pcm"], dtype=np.float32).copy())
            elif m["type"] == "Text":  # before the audio of its step
                assert m["step_idx"] == len(self.pcm)
                step_text += m["text"]
            elif m["type"] == "Marker":
                self.markers.append((m["id"], len(self.pcm) - 1))
        if any(m["type"] == "Audio" for m in msgs or ()):
            self.texts.append(step_text)

    @property
    def loud(self) -> list[bool]:
        return [float(np.sqrt(np.mean(p**2))) > LOUD for p in self.pcm]


def _open(engine: MoshiEngine, loop: asyncio.AbstractEventLoop) -> tuple[MoshiSession, Record]:
    s = engine.acquire(loop)
    assert s is not None
    rec = Record()
    s.emit = rec.collect  # type: ignore[method-assign]
    return s, rec


def _frames(pcm: np.ndarray) -> list[np.ndarray]:
    n = -(-pcm.size // FRAME)
    padded = np.zeros(n * FRAME, dtype=np.float32)
    padded[: pcm.size] = pcm
    return [padded[i * FRAME : (i + 1) * FRAME] for i in range(n)]


def _lockstep(engine: MoshiEngine, s: MoshiSession, frames: list[np.ndarray]) -> None:
    """One frame per step, as a client at real time sends them."""
    for f in frames:
        s.push_audio(f)
        engine.tick()


def _script(voice: np.ndarray, seed: int) -> list[np.ndarray]:
    """Silence, the spoken sentence, silence: a user who answers the greeting."""
    rng = np.random.default_rng(seed)
    gap = 8 + int(rng.integers(0, 6))
    return [np.zeros(FRAME, np.float32)] * gap + _frames(voice) + [np.zeros(FRAME, np.float32)] * 20


def test_batching_equivalence(engine: MoshiEngine, voice: np.ndarray) -> None:
    """Four sessions joining and leaving at different ticks each get exactly what they get
    alone (greedy tiny Moshi, same batch shape)."""
    loop = asyncio.new_event_loop()
    scripts = [_script(voice * (0.6 + 0.2 * i), seed=i) for i in range(4)]
    joins = [0, 3, 7, 12]
    # Whole scripts are queued at once here: no drops or trims in this test (a client at real
    # time never has more than a few frames queued; the queue rules have their own tests).
    engine.max_queued_frames, engine.trim_window = 10_000, 0

    def alone(i: int) -> Record:
        s, rec = _open(engine, loop)
        for f in scripts[i]:
            s.push_audio(f)
        for _ in range(len(scripts[i])):  # one step per frame (the lead step rides along)
            engine.tick()
        engine.release(s)
        return rec

    solo = [alone(i) for i in range(4)]
    together: dict[int, tuple[MoshiSession, Record]] = {}
    tick = 0
    while tick == 0 or together:
        for i, at in enumerate(joins):
            if tick == at:
                together[i] = _open(engine, loop)
                for f in scripts[i]:
                    together[i][0].push_audio(f)
        engine.tick()
        tick += 1
        for i, (s, rec) in list(together.items()):
            if len(rec.pcm) == len(scripts[i]):
                engine.release(s)
                del together[i]
                solo_rec = solo[i]
                assert rec.texts == solo_rec.texts, f"session {i}"
                np.testing.assert_allclose(
                    np.stack(rec.pcm), np.stack(solo_rec.pcm), atol=1e-5, err_msg=f"session {i}"
                )
    engine.max_queued_frames, engine.trim_window = 3, TRIM_WINDOW_STEPS
    # and the sessions did differ from one another (the comparison means something)
    assert solo[0].texts != solo[3].texts or solo[0].loud != solo[3].loud
    loop.close()


def test_underrun_steps_silence_and_counts(engine: MoshiEngine) -> None:
    loop = asyncio.new_event_loop()
    s, rec = _open(engine, loop)
    before = engine.underruns
    for _ in range(6):  # nothing sent yet: the greeting goes on, no underrun counted
        engine.tick()
    assert len(rec.pcm) == 6 and engine.underruns == before
    s.push_audio(np.zeros(FRAME * 2, np.float32))
    for _ in range(12):  # 2 frames, then a client gone quiet: Moshi keeps stepping
        engine.tick()
    assert len(rec.pcm) == 18
    assert s.underruns == 10 and engine.underruns - before == 10
    engine.release(s)
    loop.close()


def test_overrun_drops_the_oldest_and_bounds_latency(engine: MoshiEngine) -> None:
    loop = asyncio.new_event_loop()
    s, rec = _open(engine, loop)
    s.push_audio(np.zeros(FRAME * 25, np.float32))  # 2 s at once
    s.push_marker(99)
    engine.tick()
    assert s.dropped == 25 - engine.max_queued_frames
    for _ in range(engine.max_queued_frames):
        engine.tick()
    # the marker after the burst came back within max_queued_frames steps, not 25
    assert rec.markers == [(99, engine.max_queued_frames - 1)]
    engine.release(s)
    loop.close()


def test_hold_silences_and_release_restores(engine: MoshiEngine, voice: np.ndarray) -> None:
    """Held from the start: no greeting, and the user's turn gets no answer; released, the
    next turn is answered. A neighbour slot is untouched."""
    loop = asyncio.new_event_loop()
    s, rec = _open(engine, loop)
    n, rec_n = _open(engine, loop)
    s.control("hold")
    script = _script(voice, seed=5)
    _lockstep(engine, s, script)
    assert not any(rec.loud) and not "".join(rec.texts).strip()
    assert any(rec_n.loud[:4]), "the neighbour still greets"
    s.control("release")
    _lockstep(engine, s, script)
    assert any(rec.loud[len(script) :]), "after release Moshi answers the next turn"
    assert "".join(rec.texts[len(script) :]).strip()
    engine.release(s)
    engine.release(n)
    loop.close()


def test_pad_bias_makes_moshi_quieter(engine: MoshiEngine) -> None:
    loop = asyncio.new_event_loop()
    s, rec = _open(engine, loop)
    s.control("pad_bias", 10.0)
    for _ in range(10):
        engine.tick()
    q, rec_q = _open(engine, loop)
    for _ in range(10):
        engine.tick()
    assert sum(rec.loud) < sum(rec_q.loud)
    engine.release(s)
    engine.release(q)
    loop.close()


def test_warmup_runs_every_slot_and_leaves_no_trace(tiny_cache: Path) -> None:
    e = MoshiEngine(get_profile("tiny", tiny_cache), batch_size=3, device="cpu", metrics=Metrics())
    result = warm_engine(e)
    assert result.messages.get("Audio", 0) >= 3 and result.messages.get("Marker") == 4
    assert e.open_slots == 0 and e.steps == 0 and e.underruns == 0 and not e.recent_steps
