"""A tiny, keyed Moshi: a full-duplex checkpoint in moshiko's layout that acts out a conversation.

Random weights would make a tiny Moshi emit noise every frame, so nothing could be asserted about
greeting, yielding or answering. These weights are set by hand instead (like the tiny STT's, see
`tiny._key_stt_to_speech`), so that with greedy decoding in moshi's own `LMGen` the model

- greets at once: with the user silent from the start it says `MOSHI_SENTENCE`, one text token
  per frame with loud audio on the aligned frames, then PAD and silence;
- yields: a frame in which it hears the user's voice makes it emit EPAD and silence, for as long
  as the voice lasts;
- answers: after `MOSHI_HANGOVER_FRAMES` consecutive silent user frames it says the sentence
  again (a single silent frame between words does not end the user's turn), then goes quiet.

The `moshi-stubborn/` variant has the same Mimi and the same mechanics but never yields: it
talks through the user's voice, and a voice heard while it is quiet makes it start again (proof
that whatever runs it does not cut Moshi off). `moshi_text_reference` is the automaton both
checkpoints implement, in plain Python.

Moshi gets its own Mimi (`_key_moshi_mimi`), which the two checkpoints share: its codes separate
the user's voice from silence, and silence decodes to exact zeros.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from inference import tiny

# The sentence the tiny Moshi says, and its token ids in the tiny tokenizer. Its tokens must be
# distinct: the LM finds the next word from the previous one alone.
MOSHI_SENTENCE_TEXT = "howdy text"
MOSHI_SENTENCE: tuple[int, ...] = (4, 13, 10, 24, 19, 17, 18, 20, 7)
TEXT_EPAD = 0  # Moshi's end-of-padding token: here, "I am yielding to the user"
TEXT_PAD = 3
# Audio codes Moshi emits in each of its 8 codebooks: silence (decodes to zeros) or its voice.
MOSHI_SILENCE_CODE = 0
MOSHI_LOUD_CODE = 1
# First-codebook codes the Moshi Mimi gives to a voice (speech and other loud sounds); silence
# and faint noise get MOSHI_SILENCE_CODE, the other codes are never produced.
N_VOICE_CODES = 32
MOSHI_VOICE_CODES = range(1, 1 + N_VOICE_CODES)
# Consecutive silent user frames after which a yielding Moshi answers.
MOSHI_HANGOVER_FRAMES = 2

MOSHI_CONFIG: dict[str, Any] = {
    **tiny._SHARED_LM,
    "n_q": 2 * tiny.MIMI_N_Q,  # Moshi's 8 codebooks, then the user's 8
    "dep_q": tiny.MIMI_N_Q,
    "layer_scale": None,
    "depformer_dim": 32,
    "depformer_dim_feedforward": 64,
    "depformer_num_heads": 2,
    "depformer_num_layers": 1,
    "depformer_layer_scale": None,
    "depformer_multi_linear": True,
    "depformer_context": tiny.MIMI_N_Q,
    "depformer_max_period": 10000,
    "depformer_gating": "silu",
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    # moshiko's: codebooks 1-7 lag codebook 0 by one step (the 80 ms acoustic delay).
    "delays": [0, 0] + [1] * (tiny.MIMI_N_Q - 1) + [0] + [1] * (tiny.MIMI_N_Q - 1),
    "model_type": "moshi",
    "lm_gen_config": {"temp": 0.0, "temp_text": 0.0},
}

_SR = 24000
# Voice centroids are the calibration latents scaled by this: the boundary between silence and
# voice moves down to quiet speech (espeak: over 90% of its voiced frames), while white noise up
# to RMS 0.01 still reads as silence.
_VOICE_SCALE = 0.35
_FAR = 1e4  # centroid of the codes nobody should reach
_LOUD_RMS = 0.2  # decoded level of Moshi's voice

# LM feature dimensions (one-hot basis vectors of the residual stream, see `_key_moshi_lm`).
_F_INIT, _F_PAD, _F_EPAD, _F_WORD = 0, 1, 2, 3
_F_U0_SILENT = _F_WORD + len(MOSHI_SENTENCE)
_F_U0_VOICE = _F_U0_SILENT + 1
_F_U1_SILENT = _F_U0_SILENT + 2
_F_U1_VOICE = _F_U0_SILENT + 3
_ACTIVE_FEATURES = 3  # one text feature, one per user codebook read
# Text logits per rule unit (see `_key_moshi_lm`): every keyed choice wins by at least 2 logits
# (greedy decoding, bf16 included), and a word beats PAD by 9, so a PAD bias (the engine's
# talkativeness control, like moshi-core's pad_mult) above 9 keeps the tiny Moshi silent, as a
# large bias silences a real one. Sampling would need bigger margins: the checkpoint asks for
# greedy decoding.
_UNIT = 1.0
# Depformer: the two feature dimensions it works with, and the logit of the chosen code.
_D_SILENT, _D_LOUD = 0, 1
_DEP_LOGIT = 100.0


def moshi_text_reference(voiced: Sequence[bool], *, stubborn: bool = False) -> list[int]:
    """The text token the keyed LM emits at each `LMGen` step, in plain Python.

    `voiced[s]`: whether the user frame that step `s` reads has a voice code in its first
    codebook (step 0 reads the initial token instead, so `voiced[0]` is ignored). Step `s` also
    reads the previous frame's second codebook, which carries the same detection (one frame of
    the user stream's acoustic delay): that is the answer's hangover. `LMGen` returns step `s`'s
    token with its audio in the output of step `s + 1`.
    """
    out: list[int] = []
    prev = -1  # the initial token
    for s in range(len(voiced)):
        v0 = s >= 1 and bool(voiced[s])
        v1 = s >= 2 and bool(voiced[s - 1])
        if prev in MOSHI_SENTENCE:
            i = MOSHI_SENTENCE.index(prev)
            following = MOSHI_SENTENCE[i + 1] if i + 1 < len(MOSHI_SENTENCE) else None
        else:
            following = None
        if stubborn:
            if following is not None:
                tok = following
            elif prev == -1 or v0:
                tok = MOSHI_SENTENCE[0]  # greets, and talks whenever it hears a voice
            else:
                tok = TEXT_PAD
        elif v0:
            tok = TEXT_EPAD  # yields
        elif prev == -1:
            tok = MOSHI_SENTENCE[0]  # greets
        elif prev == TEXT_EPAD:
            tok = TEXT_EPAD if v1 else MOSHI_SENTENCE[0]  # answers after the hangover
        elif following is not None:
            tok = following
        else:
            tok = TEXT_PAD
        out.append(tok)
        prev = tok
    return out


def _speechlike_audio(gen: torch.Generator, count: int = 12, seconds: float = 2.0) -> torch.Tensor:
    """Loud speech-like calibration signals [count, 1, T]: a gliding pitch with harmonics under
    a syllable-rate envelope (no espeak needed at generation time)."""
    t = torch.arange(int(_SR * seconds)) / _SR
    sigs = []
    for _ in range(count):
        f0 = 90 + 160 * torch.rand((), generator=gen)
        glide = 1 + 0.15 * torch.sin(2 * math.pi * (0.3 + 0.5 * torch.rand((), generator=gen)) * t)
        phase = 2 * math.pi * torch.cumsum(f0 * glide, 0) / _SR
        voice = sum(torch.sin(k * phase) / k for k in range(1, 9))
        syllables = torch.sin(math.pi * (3 + 3 * torch.rand((), generator=gen)) * t).abs() ** 0.5
        amp = 0.1 + 0.3 * torch.rand((), generator=gen)
        sigs.append(amp * syllables * voice / 1.5)
    return torch.stack(sigs)[:, None, :]


def _set_codebook(layer: Any, centroids: torch.Tensor) -> None:
    cb = layer._codebook
    cb.embedding_sum.copy_(centroids)
    cb.cluster_usage.fill_(1.0)
    cb._initialized.fill_(1.0)
    cb._embedding = None


def _make_identity(transformer: Any) -> None:
    """Zero what each layer adds to its residual stream: the transformer passes its input on."""
    for name, param in transformer.named_parameters():
        if "out_projs" in name or name.endswith(("linear2.weight", "linear_out.weight")):
            param.zero_()


def _key_moshi_mimi(mimi: Any, gen: torch.Generator) -> None:
    """Moshi's Mimi (same architecture as `tiny.MIMI_CONFIG`), whose codes tell voice from
    silence in both directions.

    Encoder: conv biases are zeroed, so silence encodes to a zero latent and a sound's latent
    follows its loudness; the encoder transformer is made an identity (with random weights it
    carried past frames into the present and made the codes of silence drift with time).
    First codebook: code 0 is the zero vector (silence), codes `MOSHI_VOICE_CODES` are latents
    of loud speech-like calibration frames, scaled by `_VOICE_SCALE`, and the other codes sit
    `_FAR` away. The acoustic quantizer's first codebook is a copy (same input projection), so
    the user's second codebook, which the LM reads one frame late, repeats the detection of the
    previous frame. The residual codebooks hold code 0 = zero and calibration residuals.

    Decoder: biases zeroed and transformer an identity, so silence codes decode to exact zeros;
    every causal conv keeps only its present tap and every transposed conv writes only into its
    own output span, so each frame decodes from its own codes alone (no tail of a past word).
    The last conv is scaled so that Moshi's voice, `MOSHI_LOUD_CODE` in every codebook, decodes
    to RMS `_LOUD_RMS`.
    """
    for name, param in mimi.named_parameters():
        if name.startswith(("encoder.", "decoder.")) and name.endswith("bias"):
            param.zero_()
    _make_identity(mimi.encoder_transformer)
    _make_identity(mimi.decoder_transformer)
    for module in [*mimi.decoder.modules(), *mimi.upsample.modules()]:
        if isinstance(module, torch.nn.ConvTranspose1d):
            module.weight[..., module.stride[0] :] = 0.0
        elif isinstance(module, torch.nn.Conv1d):
            module.weight[..., :-1] = 0.0
    last = [m for m in mimi.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]

    first, rest = mimi.quantizer.rvq_first, mimi.quantizer.rvq_rest
    rest.input_proj.weight.copy_(first.input_proj.weight)
    latent = mimi._encode_to_unquantized_latent(_speechlike_audio(gen))
    z = first.input_proj(latent).transpose(1, 2).reshape(-1, first.dimension)
    norms = z.norm(dim=1)
    loud = torch.nonzero(norms > norms.median()).flatten()
    picked = loud[torch.randperm(len(loud), generator=gen)[:N_VOICE_CODES]]
    picked = picked[norms[picked].argsort(descending=True)]  # code 1, Moshi's voice: the loudest
    bins = tiny.AUDIO_CARD
    centroids = torch.full((bins, first.dimension), _FAR)
    centroids[MOSHI_SILENCE_CODE] = 0.0
    centroids[1 : 1 + N_VOICE_CODES] = _VOICE_SCALE * z[picked]
    _set_codebook(first.vq.layers[0], centroids)
    _set_codebook(rest.vq.layers[0], centroids)
    residual = z - centroids[torch.cdist(z, centroids).argmin(dim=1)]
    for layer in list(rest.vq.layers)[1:]:
        centroids = torch.full((bins, first.dimension), _FAR)
        centroids[MOSHI_SILENCE_CODE] = 0.0
        centroids[1 : 1 + N_VOICE_CODES] = residual[picked]
        _set_codebook(layer, centroids)
        residual = residual - centroids[torch.cdist(residual, centroids).argmin(dim=1)]

    voice = torch.full((1, tiny.MIMI_N_Q, 1), MOSHI_LOUD_CODE)
    level = float(mimi.decode(voice).pow(2).mean().sqrt())
    last.weight.mul_(_LOUD_RMS / max(level, 1e-12))


def _one_hot_rows(weight: torch.Tensor, features: dict[int, int]) -> None:
    """Embedding rows as basis vectors: `features` maps a row to its feature dimension."""
    weight.zero_()
    for row, feature in features.items():
        weight[row, feature] = 1.0


def _key_moshi_lm(lm: Any, *, stubborn: bool) -> None:
    """Make the LM a conversation automaton (`moshi_text_reference`) inside moshi's forward pass.

    Main transformer: every layer adds zero (identity), so `out_norm` sees the sum of the input
    embeddings, which are one-hot features: the previous text token (initial, PAD, EPAD, or which
    sentence word; other tokens read as PAD), the user's first codebook of this frame (voice or
    silence; the initial token reads as silence) and the user's second codebook, one frame late
    (voice or silence). Moshi's own audio and the user's other codebooks embed to zero. Three
    features are always on, so after the RMS norm each reads `sqrt(dim / 3)`.

    Text head, in units of `_UNIT` per feature (V0 / V1: voice now / in the previous frame):
        EPAD      = 20 V0 + 6 [prev EPAD] + 6 V1           (yield; hold on through a 1-frame gap)
        word 1    = 10 [prev initial] + 10 [prev EPAD]     (greet; answer after the hangover)
        word i+1  = 10 [prev word i]                       (go on with the sentence)
        PAD       = 10 [prev PAD] + 10 [prev last word] + 1
    The stubborn variant drops the EPAD row, adds 8 V0 to word 1 and -5 V0 to PAD: a voice
    starts the sentence instead of stopping it. Every rule wins by at least 2 units.

    Depformer: its layers are identities too. Codebook 0 reads the text token just sampled
    (`depformer_text_emb`: "loud" for a sentence word, else "silent"); codebooks 1-7, which
    moshiko's delays place one frame back, read the previous text token from the main
    transformer's output (`depformer_in`), not the codebook before them (`depformer_emb` zero).
    Each codebook's head maps silent -> `MOSHI_SILENCE_CODE`, loud -> `MOSHI_LOUD_CODE`. So
    once `LMGen` has realigned the streams, every output frame is loud in all 8 codebooks
    exactly when its text token is a word.
    """
    card, text_card, dim = lm.card, lm.text_card, lm.dim
    dep_q = lm.dep_q
    _make_identity(lm.transformer)
    _make_identity(lm.depformer)
    lm.out_norm.alpha.fill_(1.0)

    text = {tok: _F_PAD for tok in range(text_card + 1)}
    text[text_card] = _F_INIT
    text[TEXT_EPAD] = _F_EPAD
    for i, tok in enumerate(MOSHI_SENTENCE):
        text[tok] = _F_WORD + i
    _one_hot_rows(lm.text_emb.weight, text)
    for emb in lm.emb:
        emb.weight.zero_()
    for index, (silent, voice) in (
        (dep_q, (_F_U0_SILENT, _F_U0_VOICE)),
        (dep_q + 1, (_F_U1_SILENT, _F_U1_VOICE)),
    ):
        rows = {code: voice for code in range(card + 1)}
        rows[MOSHI_SILENCE_CODE] = rows[card] = silent
        _one_hot_rows(lm.emb[index].weight, rows)

    scores = torch.zeros(text_card, dim)
    first = MOSHI_SENTENCE[0]
    scores[first, _F_INIT] = scores[first, _F_EPAD] = 10.0
    for i, tok in enumerate(MOSHI_SENTENCE[1:]):
        scores[tok, _F_WORD + i] = 10.0
    scores[TEXT_PAD, _F_PAD] = scores[TEXT_PAD, _F_WORD + len(MOSHI_SENTENCE) - 1] = 10.0
    scores[TEXT_PAD, _F_U0_SILENT] = scores[TEXT_PAD, _F_U0_VOICE] = 1.0
    if stubborn:
        scores[first, _F_U0_VOICE] = 8.0
        scores[TEXT_PAD, _F_U0_VOICE] = -4.0  # 1 - 5
    else:
        scores[TEXT_EPAD, _F_U0_VOICE] = 20.0
        scores[TEXT_EPAD, _F_EPAD] = scores[TEXT_EPAD, _F_U1_VOICE] = 6.0
    root = math.sqrt(dim / _ACTIVE_FEATURES)  # a one-hot feature after the RMS norm
    lm.text_linear.weight.copy_(scores * (_UNIT / root))

    dep_text = {tok: _D_SILENT for tok in range(text_card + 1)}
    dep_text.update({tok: _D_LOUD for tok in MOSHI_SENTENCE})
    _one_hot_rows(lm.depformer_text_emb.weight, dep_text)
    for emb in lm.depformer_emb:
        emb.weight.zero_()
    lm.depformer_in[0].weight.zero_()
    for linear in list(lm.depformer_in)[1:]:
        linear.weight.zero_()
        for feature in (_F_INIT, _F_PAD, _F_EPAD):
            linear.weight[_D_SILENT, feature] = 1.0 / root
        for i in range(len(MOSHI_SENTENCE)):
            linear.weight[_D_LOUD, _F_WORD + i] = 1.0 / root
    for head in lm.linears:
        head.weight.zero_()
        head.weight[MOSHI_SILENCE_CODE, _D_SILENT] = _DEP_LOGIT
        head.weight[MOSHI_LOUD_CODE, _D_LOUD] = _DEP_LOGIT


def _check_sentence(tokenizer: Path) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(str(tokenizer))
    ids = tuple(sp.encode(MOSHI_SENTENCE_TEXT))
    if ids != MOSHI_SENTENCE or len(set(ids)) != len(ids) or min(ids) < 4:
        raise RuntimeError(f"tiny tokenizer encodes {MOSHI_SENTENCE_TEXT!r} as {ids}")


def write_moshi_dirs(root: Path, tokenizer: Path, seed: int) -> None:
    """Write `root/moshi/` and `root/moshi-stubborn/` in Kyutai's layout (config.json,
    model.safetensors under the released tensor names, mimi.safetensors, mimi_config.json,
    tokenizer.model)."""
    from moshi.models import loaders

    _check_sentence(tokenizer)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + 1)
    mimi = loaders.get_mimi(None, tiny.MIMI_CONFIG, device="cpu", num_codebooks=tiny.MIMI_N_Q)
    with torch.no_grad():
        _key_moshi_mimi(mimi, gen)
    for name, stubborn in (("moshi", False), ("moshi-stubborn", True)):
        dest = root / name
        dest.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        lm = loaders.get_moshi_lm(
            None, lm_kwargs=tiny._lm_kwargs(MOSHI_CONFIG), device="cpu", dtype=torch.float32
        )
        with torch.no_grad():
            _key_moshi_lm(lm, stubborn=stubborn)
        tiny._save(lm, dest / "model.safetensors")
        tiny._save(mimi, dest / "mimi.safetensors")
        tiny._write_json(dest / "mimi_config.json", tiny.MIMI_CONFIG)
        tiny._write_json(dest / "config.json", MOSHI_CONFIG)
        (dest / "tokenizer.model").write_bytes(tokenizer.read_bytes())
