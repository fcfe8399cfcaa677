"""The tiny STT's pause heads behave like Kyutai's: low while the user speaks and through short
hesitations, rising over a sustained pause, falling as soon as speech resumes.

Everything runs through the server's own SttEngine (moshi's Mimi encoder and
`LMGen.step_with_extra_heads` on the tiny checkpoint, the forward pass the server runs); nothing
is timed, every number below is a function of the audio alone.

How time is measured. The tiny STT has no text delay (`delays` are all 0; the 0.5 s of its
`stt_config` only shifts word timestamps and marker echoes), so Step `k` reports the model's
reading of audio frame `k` (samples 1920k..1920(k+1)). "At the model input" a frame is silent
when the checkpoint reads its first Mimi code as silence (the group the text head maps to
padding). Mimi's causal encoder smears the end of speech over 1-2 frames, so the end of speech
is taken where the model sees it: the pause is `n` silent frames long at the Step of its `n`-th
consecutive silent frame, i.e. `n * 80 ms` after the last frame the model read as speech.
The audio-timeline figure (end of the Step's frame minus the last non-silent sample) is printed
alongside. Resumption is measured from the first frame holding the new speech: a fall seen on
Step `k` counts as `(k + 1 - k_onset) * 80 ms`.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.metrics import Metrics
from inference.profiles import get_profile
from inference.stt_engine import SttEngine

SR = 24000
FRAME = 1920
FRAME_S = FRAME / SR
END_OF_TURN = 0.6  # Unmute ends the turn when prs[2] > 0.6
BARGE_IN = 0.4  # ... and reads prs[2] < 0.4 as the user speaking
WARMUP_STEPS = 12  # Unmute ignores the first 12 steps


@pytest.fixture(scope="module")
def stt(tiny_cache: Path) -> SttEngine:
    return SttEngine(get_profile("tiny", tiny_cache), batch_size=2, device="cpu", metrics=Metrics())


def _voiced(seconds: float, seed: int) -> np.ndarray:
    """Deterministic vowel-like audio: a gliding pitch with harmonics, syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SR)
    t = np.arange(n) / SR
    f0 = 130 + 15 * seed + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    sig = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return (0.15 * env * sig + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _espeak(text: str) -> np.ndarray:
    from harness.speech import read_wav, speech_wav

    samples, rate = read_wav(speech_wav(text, lead_silence_s=0.0, trail_silence_s=0.0))
    assert rate == SR
    # espeak-ng ends every utterance with 0.35 s of its own silence: cut it, so the gaps below
    # are the only pauses.
    loud = np.flatnonzero(np.abs(samples) > 1e-3)
    return samples[loud[0] : loud[-1] + 1]


def _speech(source: str, part: int) -> np.ndarray:
    if source == "synthetic":
        return _voiced((1.6, 1.2, 0.8)[part], seed=part + 1)
    texts = ("hello there how are you doing today", "one two three four five", "and six seven")
    return _espeak(texts[part])


@pytest.fixture(params=["synthetic", "espeak"])
def source(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "espeak" and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    yield request.param


def _frames(x: np.ndarray) -> np.ndarray:
    """Pad to whole frames (with silence), as a client flushing its last samples would."""
    return np.concatenate([x, np.zeros(-len(x) % FRAME, dtype=np.float32)])


async def _run(stt: SttEngine, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps one session through the engine; returns prs [steps, 4] and, per step, whether the
    model read the frame as silence (its first Mimi code is in the silence group)."""
    loop = asyncio.get_running_loop()
    session = stt.acquire(loop)
    assert session is not None
    silent_code = (stt.lm.emb[0].weight[:, 0] > 0).cpu().numpy()
    codes: list[int] = []
    encode = stt.mimi.encode

    def spy(x: Any) -> Any:  # observes the codes the LM gets; computes nothing itself
        out = encode(x)
        codes.append(int(out[session.slot, 0, 0]))
        return out

    stt.mimi.encode = spy
    try:
        session.push_audio(audio)
        while stt.tick():
            pass
    finally:
        del stt.mimi.encode
    await asyncio.sleep(0)
    msgs: list[dict[str, Any]] = []
    while not session.queue.empty():
        msgs.extend(session.queue.get_nowait() or [])
    stt.release(session)
    steps = [m for m in msgs if m["type"] == "Step"]
    assert [m["step_idx"] for m in steps] == list(range(len(audio) // FRAME))
    # The engine steps one lead frame of silence after a reset, which the client never sees.
    silent = silent_code[np.array(codes[1:])]
    assert len(silent) == len(steps)
    return np.array([m["prs"] for m in steps]), silent


def _last_sound(x: np.ndarray, start: int, stop: int) -> float:
    """Time (s) just after the last sample louder than -60 dBFS in x[start:stop]."""
    loud = np.flatnonzero(np.abs(x[start:stop]) > 1e-3)
    return (start + int(loud[-1]) + 1) / SR


async def test_pause_curve(stt: SttEngine, source: str) -> None:
    """Speech, a 1.6 s pause, speech again: the table of prs against pause length."""
    first, again = _frames(_speech(source, 0)), _frames(_speech(source, 2))
    pause = np.zeros(20 * FRAME, dtype=np.float32)
    audio = np.concatenate([first, pause, again, np.zeros(5 * FRAME, dtype=np.float32)])
    prs, silent = await _run(stt, audio)
    p2 = prs[:, 2]
    k_pause, k_onset = len(first) // FRAME, (len(first) + len(pause)) // FRAME

    # While the user speaks (after Unmute's warm-up steps) the heads stay low.
    speaking = [k for k in range(WARMUP_STEPS, k_pause) if not silent[k]]
    assert len(speaking) > (k_pause - WARMUP_STEPS) // 2
    assert p2[speaking].max() < 0.1, p2[speaking]

    # The pause as the model sees it: the run of silent frames ending where speech resumes
    # (it starts a frame or two after the audio's, Mimi's encoder smears the end of speech).
    k0 = k_onset
    while silent[k0 - 1]:
        k0 -= 1
    assert k_pause - 8 <= k0 <= k_pause + 2, (k0, k_pause)
    run = p2[k0:k_onset]
    assert np.all(np.diff(run) >= -1e-6), run  # rises monotonically over a sustained pause
    speech_end = _last_sound(audio, 0, k_pause * FRAME)
    print(f"\n[{source}] pause heads after the end of speech (model input: frame {k0})")
    print(" silent frames | pause (s) | since audio end (s) | prs[0]  prs[1]  prs[2]  prs[3]")
    for n in range(1, len(run) + 1):
        k = k0 + n - 1
        heads = "  ".join(f"{p:.3f}" for p in prs[k])
        print(f" {n:13d} | {n * FRAME_S:9.2f} | {(k + 1) * FRAME_S - speech_end:19.2f} | {heads}")

    n_cross = int(np.argmax(run > END_OF_TURN)) + 1
    assert run[n_cross - 1] > END_OF_TURN
    # Not during a hesitation (<= 0.4 s), and by 0.6 s of pause.
    assert 0.4 < n_cross * FRAME_S <= 0.6, n_cross
    assert run[:5].max() < END_OF_TURN
    assert run[7:].min() > 0.9  # a sure pause once the window is all silence
    # Eager heads rise first: at every step of the pause, prs[0] >= prs[1] >= prs[2] >= prs[3].
    assert np.all(np.diff(prs[k0:k_onset], axis=1) <= 1e-6)

    # Speech resumes: the heads fall within 0.2 s of the onset.
    k_fall = k_onset + int(np.argmax(p2[k_onset:] < BARGE_IN))
    assert p2[k_fall] < BARGE_IN
    fall_s = (k_fall + 1 - k_onset) * FRAME_S
    print(
        f" cross {END_OF_TURN}: {n_cross} silent frames = {n_cross * FRAME_S:.2f} s at the "
        f"model input, {(k0 + n_cross) * FRAME_S - speech_end:.2f} s after the audio's end "
        f"of speech; resumed speech: prs[2] {p2[k_onset - 1]:.3f} -> {p2[k_fall]:.3f} "
        f"{fall_s:.2f} s after the onset"
    )
    assert fall_s <= 0.2


@pytest.mark.parametrize("gap_s", [0.2, 0.35])
async def test_hesitation_stays_below_end_of_turn(
    stt: SttEngine, source: str, gap_s: float
) -> None:
    first, second = _speech(source, 0), _speech(source, 1)
    gap = np.zeros(round(gap_s * SR), dtype=np.float32)
    audio = _frames(np.concatenate([first, gap, second]))
    prs, silent = await _run(stt, audio)
    p2 = prs[WARMUP_STEPS : (len(first) + len(gap) + len(second)) // FRAME, 2]
    # The longest run of silent frames the model saw (the gap, less the frame or two over which
    # Mimi smears the end of speech), and the highest prs[2] anywhere in the turn.
    longest = max(len(r) for r in "".join("s" if s else "v" for s in silent).split("v"))
    print(
        f"\n[{source}] {gap_s:.2f} s gap: longest silent run {longest} frames "
        f"({longest * FRAME_S:.2f} s), max prs[2] {p2.max():.3f}"
    )
    assert longest >= 1  # the model did see the gap
    assert p2.max() < END_OF_TURN


async def test_a_lone_sound_after_a_long_silence_keeps_the_heads_down(stt: SttEngine) -> None:
    """The first word after a long silence, then a short gap (a soft consonant the model reads
    as silence): one voiced frame must hold the heads down until a whole window of silence
    has passed, or the turn that word opened would end at once."""
    burst = _voiced(0.1, seed=7)
    audio = _frames(
        np.concatenate(
            [np.zeros(round(2.0 * SR), np.float32), burst, np.zeros(round(0.25 * SR), np.float32)]
        )
    )
    prs, silent = await _run(stt, audio)
    voiced = [k for k in range(WARMUP_STEPS, len(silent)) if not silent[k]]
    assert voiced, "the burst was read as silence"
    after = prs[voiced[-1] :, 2]
    # At most 3 silent frames follow the burst here: the heads stay low throughout.
    assert after.max() < 0.1, after
