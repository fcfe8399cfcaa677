"""The tiny keyed Moshi (inference/tiny_moshi.py) acts out a conversation when run as
moshi.server runs Moshi: greets, yields to the user's voice, answers when the user stops.

Everything goes through moshi's own code: `CheckpointInfo.from_hf_repo` + `get_moshi` +
`get_mimi`, `LMGen(support_out_of_sync=True, **lm_gen_config)`, both streaming forever, one
1920-sample frame per step, a silent lead frame first (its Mimi state reset after encoding, as
moshi.server does).

How time is counted. Index `j` is the user's frame `j` (after the lead frame) and what the step
that consumed it returned: the text token `tokens[:, 0]` and the audio decoded from
`tokens[:, 1:]`. That output is the model's reaction to frame `j - 1`: `LMGen` returns a text
token with its audio one step after sampling it (moshiko's acoustic delay). So a frame heard as
voice is answered by a yield at `j + 1` at the earliest.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference import tiny
from inference.tiny_moshi import (
    MOSHI_HANGOVER_FRAMES,
    MOSHI_LOUD_CODE,
    MOSHI_SENTENCE,
    MOSHI_SENTENCE_TEXT,
    MOSHI_SILENCE_CODE,
    MOSHI_VOICE_CODES,
    TEXT_EPAD,
    TEXT_PAD,
    moshi_text_reference,
)

FRAME = 1920
VOICED_RMS = 0.02  # a frame of user audio "is speech" above this
LOUD, QUIET = 0.05, 0.01  # decoded Moshi audio: speaking above LOUD, silent below QUIET
N = len(MOSHI_SENTENCE)
LEAD = 4  # silent user frames before the user speaks: Moshi is greeting by then

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@dataclass
class Model:
    info: Any
    lm: Any
    mimi: Any


@dataclass
class Trace:
    text: np.ndarray  # [frames, B] text token per user frame (see the module docstring)
    rms: np.ndarray  # [frames, B] RMS of the decoded Moshi audio
    heard: np.ndarray  # [frames, B] the user's frame got a voice code (first codebook)
    voiced: np.ndarray  # [frames, B] the user's frame is louder than VOICED_RMS


def _load(root: Path, name: str) -> Model:
    from moshi.models import loaders

    d = root / name
    info = loaders.CheckpointInfo.from_hf_repo(
        f"tiny/{name}",
        moshi_weights=d / "model.safetensors",
        mimi_weights=d / "mimi.safetensors",
        tokenizer=d / "tokenizer.model",
        config_path=d / "config.json",
        mimi_config_path=d / "mimi_config.json",
    )
    lm = info.get_moshi(device="cpu", dtype=torch.float32)
    return Model(info, lm, info.get_mimi(device="cpu"))


@pytest.fixture(scope="module")
def root(tiny_cache: Path) -> Path:
    torch.manual_seed(0)
    return tiny.ensure_tiny_checkpoints(tiny_cache)


@pytest.fixture(scope="module")
def models(root: Path) -> dict[str, Model]:
    return {name: _load(root, name) for name in ("moshi", "moshi-stubborn")}


def _espeak(text: str) -> np.ndarray:
    from harness.speech import read_wav, speech_wav

    samples, rate = read_wav(speech_wav(text, lead_silence_s=0.0, trail_silence_s=0.0))
    assert rate == 24000
    loud = np.flatnonzero(np.abs(samples) > 1e-3)  # cut espeak's own leading/trailing silence
    return samples[loud[0] : loud[-1] + 1]


def _user(text: str, *, lead: int = LEAD, tail: int = 20) -> np.ndarray:
    """`lead` silent frames, the spoken text padded to whole frames, `tail` silent frames."""
    speech = _espeak(text)
    speech = np.concatenate([speech, np.zeros(-len(speech) % FRAME, np.float32)])
    pad = [np.zeros(n * FRAME, np.float32) for n in (lead, tail)]
    return np.concatenate([pad[0], speech, pad[1]])


@torch.no_grad()
def _converse(root: Path, name: str, users: list[np.ndarray]) -> Trace:
    """Runs one conversation per batch slot, frame by frame, as moshi.server does (on a freshly
    loaded model: `streaming_forever` cannot be undone)."""
    from moshi.models import LMGen

    model = _load(root, name)
    batch = len(users)
    n = max(len(u) for u in users) // FRAME
    pcm = np.zeros((batch, (n + 1) * FRAME), np.float32)  # frame 0: the silent lead frame
    for b, user in enumerate(users):
        pcm[b, FRAME : FRAME + len(user)] = user
    lm_gen = LMGen(model.lm, support_out_of_sync=True, **model.info.lm_gen_config)
    model.mimi.streaming_forever(batch)
    lm_gen.streaming_forever(batch)
    text, rms, heard = [], [], []
    for step in range(n + 1):
        frame = torch.from_numpy(pcm[:, step * FRAME : (step + 1) * FRAME])[:, None]
        codes = model.mimi.encode(frame)
        if step == 0:
            model.mimi.reset_streaming()  # the lead frame is "in the past" (moshi.server)
        tokens = lm_gen.step(codes)
        assert tokens is not None
        if step == 0:
            assert (tokens == -2).all()  # nothing generated yet: the acoustic delay
            continue
        assert (tokens >= 0).all()
        text.append(tokens[:, 0, 0].numpy())
        audio = model.mimi.decode(tokens[:, 1:])
        rms.append(audio.pow(2).mean(dim=(1, 2)).sqrt().numpy())
        heard.append(np.isin(codes[:, 0, 0].numpy(), MOSHI_VOICE_CODES))
    frames = pcm[:, FRAME:].reshape(batch, n, FRAME)
    voiced = np.sqrt((frames**2).mean(axis=2)).T > VOICED_RMS
    return Trace(np.array(text), np.array(rms), np.array(heard), voiced)


def _show(trace: Trace, slot: int = 0) -> str:
    """One cell per frame: user (v voiced / s), Moshi's text (a.. word, - EPAD, . PAD), # loud."""
    cells = []
    for j in range(len(trace.text)):
        tok = int(trace.text[j, slot])
        piece = chr(ord("a") + MOSHI_SENTENCE.index(tok)) if tok in MOSHI_SENTENCE else "?"
        piece = {TEXT_EPAD: "-", TEXT_PAD: "."}.get(tok, piece)
        loud = "#" if trace.rms[j, slot] > LOUD else ("+" if trace.rms[j, slot] > QUIET else " ")
        cells.append(("v" if trace.voiced[j, slot] else "s") + piece + loud)
    return " ".join(cells)


def _speaking(trace: Trace, j: int, slot: int = 0) -> bool:
    return bool(trace.text[j, slot] in MOSHI_SENTENCE and trace.rms[j, slot] > LOUD)


def _silent(trace: Trace, j: int, slot: int = 0) -> bool:
    return bool(trace.text[j, slot] in (TEXT_EPAD, TEXT_PAD) and trace.rms[j, slot] < QUIET)


def _check_reference(trace: Trace, slot: int, *, stubborn: bool) -> None:
    # Step s reads user frame s - 1 (step 0: the lead frame, which the LM does not see) and
    # its token comes back at index s.
    steps = [False, *trace.heard[:-1, slot].tolist()]
    assert trace.text[:, slot].tolist() == moshi_text_reference(steps, stubborn=stubborn)


def test_checkpoint_layout_and_config(models: dict[str, Model]) -> None:
    for model in models.values():
        assert model.info.model_type == "moshi"
        assert model.info.lm_gen_config == {"temp": 0.0, "temp_text": 0.0}
        assert model.lm.n_q == 16 and model.lm.dep_q == 8
        assert model.lm.delays == [0, 0, *[1] * 7, 0, *[1] * 7]
        assert model.mimi.num_codebooks == 8 and model.mimi.cardinality == model.lm.card
    tok = models["moshi"].info.get_text_tokenizer()
    assert all(t >= 4 and tok.id_to_piece(t) for t in MOSHI_SENTENCE)
    assert tok.decode(list(MOSHI_SENTENCE)) == MOSHI_SENTENCE_TEXT


@torch.no_grad()
def test_mimi_silence_decodes_silent_and_voice_decodes_loud(models: dict[str, Model]) -> None:
    mimi = models["moshi"].mimi
    shape = (1, tiny.MIMI_N_Q, 6)
    silent = mimi.decode(torch.full(shape, MOSHI_SILENCE_CODE))
    loud = mimi.decode(torch.full(shape, MOSHI_LOUD_CODE))
    rms_silent, rms_loud = float(silent.pow(2).mean().sqrt()), float(loud.pow(2).mean().sqrt())
    print(f"\ndecoded RMS: silence codes {rms_silent:.4f}, Moshi's voice {rms_loud:.4f}")
    assert rms_silent < QUIET and rms_loud > LOUD
    # Silence and faint noise encode to the silence code, in every frame (no drift with time).
    gen = torch.Generator().manual_seed(1)
    noise = 3e-3 * torch.randn(1, 1, FRAME * 25, generator=gen)
    quiet = torch.cat([torch.zeros(1, 1, FRAME * 25), noise])
    assert (mimi.encode(quiet)[:, :2] == MOSHI_SILENCE_CODE).all()


@torch.no_grad()
def test_mimi_hears_held_out_speech(models: dict[str, Model]) -> None:
    """The Moshi Mimi's first codebook tells espeak speech from silence (calibrated on synthetic
    audio only)."""
    mimi = models["moshi"].mimi
    hits = total = 0
    for text in ("the weather is lovely this afternoon", "please tell me a short story"):
        user = _user(text, lead=2, tail=4)
        with mimi.streaming(1):
            codes = torch.cat(
                [mimi.encode(torch.from_numpy(f)[None, None]) for f in user.reshape(-1, FRAME)],
                dim=2,
            )
        voiced = np.sqrt((user.reshape(-1, FRAME) ** 2).mean(axis=1)) > VOICED_RMS
        heard = np.isin(codes[0, 0].numpy(), MOSHI_VOICE_CODES)
        assert (codes[0, 0] == codes[0, 1]).all()  # the second codebook repeats the detection
        assert not heard[:2].any()  # leading silence
        hits += int((heard & voiced).sum())
        total += int(voiced.sum())
    print(f"\nvoice detection: {hits}/{total} voiced frames = {hits / total:.0%}")
    assert hits >= 0.85 * total


def test_greets_yields_and_answers(root: Path) -> None:
    results = []
    for text in ("hello there how are you doing today", "one two three four five"):
        trace = _converse(root, "moshi", [_user(text)])
        print(f"\n{text!r}\n{_show(trace)}")
        _check_reference(trace, 0, stubborn=False)
        voiced = np.flatnonzero(trace.voiced[:, 0])
        first, last = int(voiced[0]), int(voiced[-1])
        assert first == LEAD

        # Greets at once with the sentence, loud, until the user's voice is heard.
        assert all(_speaking(trace, j) for j in range(first + 1))
        assert trace.text[: first + 1, 0].tolist() == list(MOSHI_SENTENCE[: first + 1])

        # Yields within 2 frames of the first voiced frame, silent while the user speaks.
        yield_at = next(j for j in range(first, len(trace.text)) if _silent(trace, j))
        assert yield_at - first <= 2
        blips = [j for j in range(yield_at, last + 1) if not _silent(trace, j)]
        assert blips == []  # no restart inside the user's speech (hangover)
        heard = "".join("v" if h else "s" for h in trace.heard[:, 0])
        gaps = [len(g) for g in heard.strip("s").split("v") if g]
        print(f"silent frames Mimi heard inside the speech: {gaps}")

        # Answers after MOSHI_HANGOVER_FRAMES silent frames: the sentence, loud, then quiet.
        answer_at = next(j for j in range(last, len(trace.text)) if _speaking(trace, j))
        # + 1 for the acoustic delay, + 1 for Mimi's encoder, which hears the end of a word in
        # the frame after it (under VOICED_RMS, over the silence code).
        assert answer_at - last <= MOSHI_HANGOVER_FRAMES + 2
        said = trace.text[answer_at : answer_at + N, 0].tolist()
        assert said == list(MOSHI_SENTENCE)
        assert all(_speaking(trace, j) for j in range(answer_at, answer_at + N))
        assert all(_silent(trace, j) for j in range(answer_at + N, len(trace.text)))
        results.append((yield_at - first, answer_at - last))
    print(f"frames to yield / to answer (from first / last voiced frame): {results}")


@torch.no_grad()
def test_one_silent_frame_inside_speech_does_not_end_the_turn(root: Path) -> None:
    """The LM fed user codes directly (as Mimi gives them: the second codebook repeats the
    first): one silent frame between words keeps Moshi quiet, MOSHI_HANGOVER_FRAMES make it
    answer."""
    from moshi.models import LMGen

    for gap, answers in ((1, False), (MOSHI_HANGOVER_FRAMES, True)):
        heard = [False] * 4 + [True] * 5 + [False] * gap + [True] * 5 + [False] * 14
        model = _load(root, "moshi")
        lm_gen = LMGen(model.lm, support_out_of_sync=True, **model.info.lm_gen_config)
        lm_gen.streaming_forever(1)
        voice = MOSHI_VOICE_CODES[4]
        text = []
        for h in heard:
            codes = torch.full((1, tiny.MIMI_N_Q, 1), voice if h else MOSHI_SILENCE_CODE)
            tokens = lm_gen.step(codes)
            assert tokens is not None
            text.append(int(tokens[0, 0, 0]))
        # Output s holds the token of step s - 1 (-2 at step 0).
        assert text[1:] == moshi_text_reference(heard)[:-1]
        in_gap = text[10 : 10 + gap + 2]  # from the reaction to the gap to that to the words after
        assert any(t in MOSHI_SENTENCE for t in in_gap) == answers, (gap, text)
        assert text[-N - 3 :] == [*MOSHI_SENTENCE, TEXT_PAD, TEXT_PAD, TEXT_PAD]  # answers


def test_stubborn_talks_through_the_user(root: Path) -> None:
    trace = _converse(root, "moshi-stubborn", [_user("hello there how are you doing today")])
    print(f"\n{_show(trace)}")
    _check_reference(trace, 0, stubborn=True)
    voiced = np.flatnonzero(trace.voiced[:, 0])
    # Loud, with sentence words, from the greeting through the end of the user's speech.
    assert all(_speaking(trace, j) for j in range(int(voiced[-1]) + 1))
    assert not any(trace.text[:, 0] == TEXT_EPAD)
    assert _silent(trace, len(trace.text) - 1)  # quiet once the user is (after its sentence)


def test_batch_slots_are_independent(root: Path) -> None:
    user = _user("one two three four five")
    quiet = np.zeros_like(user)
    both = _converse(root, "moshi", [user, quiet])
    alone = _converse(root, "moshi", [quiet])
    assert np.array_equal(both.text[:, 1], alone.text[:, 0])
    assert np.array_equal(both.rms[:, 1], alone.rms[:, 0])
    # The silent slot greets once, then waits; slot 0 is the conversation above.
    assert both.text[:N, 1].tolist() == list(MOSHI_SENTENCE)
    assert all(_silent(both, j, 1) for j in range(N, len(both.text)))
    assert not np.array_equal(both.text[:, 0], both.text[:, 1])
