"""Deterministic tiny random checkpoints in Kyutai's file layout, under its tensor names.

They let the whole server (loading, batching, protocol) run on a CPU without any download. The files
are written once into a cache directory and then loaded through moshi's normal loading path, exactly
like the real Hugging Face checkpoints. Kyutai's Rust server cannot load them as they are: it
hard-codes the full-size Mimi architecture (moshi crate `mimi.rs`, `Config::v0_1`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

# Bump when the generated files change, so stale caches are regenerated.
# 9: the STT's pause heads follow sustained silence (attention window), its Mimi tells silence
# from speech, `stt-noheads/` added (8 was an unfinished state of this change).
# 10: the pause heads cross 0.6 after 6 silent frames (0.48 s), was 7.
# 11: one voiced frame in the window holds the heads down (window of 6 frames).
# 13: keyed tiny Moshi, `moshi/` and `moshi-stubborn/` (inference/tiny_moshi.py).
TINY_VERSION = 13
SEED = 1234
MODEL_SIG = "1e68beda"
MODEL_EPOCH = 240
VOICE_SUFFIX = f".{MODEL_SIG}@{MODEL_EPOCH}.safetensors"
VOICE_FRAMES = 125
VOICE_DIM = 512

# Voices as laid out in kyutai/tts-voices; the tiny profile ships random embeddings for each.
TINY_VOICES: tuple[str, ...] = (
    "expresso/ex03-ex01_happy_001_channel1_334s.wav",
    "expresso/ex04-ex02_confused_001_channel2_111s.wav",
    "unmute-prod-website/developer-1.mp3",
    # Unmute's default voice: its clients and DSM's scripts left on defaults ask for it.
    "unmute-prod-website/default_voice.wav",
    "vctk/p225_023.wav",
    "cml-tts/fr/2114_1656_000001-0001.wav",
    "cml-tts/fr/1406_1028_000009-0003.wav",
    # The voices characters.yaml gives the agent's characters (kept in sync by a test).
    "cml-tts/fr/2154_2576_000020.wav",
    "unmute-prod-website/degaulle-2.wav",
    "unmute-prod-website/developpeuse-3.wav",
    "unmute-prod-website/ex04_narration_longform_00001.wav",
    "unmute-prod-website/fabieng-enhanced-v2.wav",
    "unmute-prod-website/p329_022.wav",
    "vctk/p226_023.wav",
)

TEXT_CARD = 32
AUDIO_CARD = 128
MIMI_N_Q = 8

MIMI_CONFIG: dict[str, Any] = {
    "sample_rate": 24000,
    "channels": 1,
    "frame_rate": 12.5,
    "seanet": {
        "channels": 1,
        "dimension": 32,
        "causal": True,
        "n_filters": 4,
        "n_residual_layers": 1,
        "activation": "ELU",
        "compress": 2,
        "dilation_base": 2,
        "disable_norm_outer_blocks": 0,
        "kernel_size": 7,
        "residual_kernel_size": 3,
        "last_kernel_size": 3,
        "norm": "none",
        "pad_mode": "constant",
        "ratios": [8, 6, 5, 4],
        "true_skip": True,
    },
    "quantizer": {
        "dimension": 16,
        "n_q": MIMI_N_Q,
        "bins": AUDIO_CARD,
        "input_dimension": 32,
        "output_dimension": 32,
    },
    "transformer": {
        "d_model": 32,
        "num_heads": 4,
        "num_layers": 1,
        "causal": True,
        "layer_scale": 0.01,
        "context": 250,
        "conv_layout": True,
        "max_period": 10000,
        "gating": "none",
        "norm": "layer_norm",
        "positional_embedding": "rope",
        "dim_feedforward": 64,
        "input_dimension": 32,
        "output_dimensions": [32],
    },
}

_SHARED_LM: dict[str, Any] = {
    "card": AUDIO_CARD,
    "n_q": MIMI_N_Q,
    "dim": 64,
    "text_card": TEXT_CARD,
    "existing_text_padding_id": 3,
    "num_heads": 4,
    "num_layers": 2,
    "hidden_scale": 4.125,
    "causal": True,
    "context": 100,
    "max_period": 10000,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "moshi_name": "model.safetensors",
    "mimi_name": "mimi.safetensors",
    "mimi_config_name": "mimi_config.json",
    "tokenizer_name": "tokenizer.model",
    "model_id": {"sig": MODEL_SIG, "epoch": MODEL_EPOCH},
}

# The tiny STT's pause heads read whether the last PAUSE_WINDOW frames were all silent: its
# attention context is that window (0.48 s). See `_key_pause_heads`.
PAUSE_WINDOW = 6
# A voiced frame counts as this many silent frames against the pause: one word in the window
# holds the heads down (a lone voiced frame after a long silence must not leave them high).
PAUSE_VOICED_WEIGHT = float(PAUSE_WINDOW)
# Per pause head (0.5, 1, 2, 3 s pauses): the silence score at which it reads 0.5, and the
# logit slope per silent frame. Head 2 (Unmute's) reads 0.93 once the window is all silent.
PAUSE_HALF_FRAMES = (4.5, 5.0, 5.25, 5.75)
PAUSE_SLOPE = 3.5
# Logit drop on a voiced frame: pause heads fall as soon as speech resumes.
PAUSE_VOICED_DROP = 6.0

STT_CONFIG: dict[str, Any] = {
    **_SHARED_LM,
    "context": PAUSE_WINDOW,
    "dep_q": 0,
    "delays": [0] * (MIMI_N_Q + 1),
    "extra_heads_num_heads": 4,
    "extra_heads_dim": 6,
    "stt_config": {"audio_silence_prefix_seconds": 0.0, "audio_delay_seconds": 0.5},
    "model_type": "stt",
}
# Like stt-2.6b-en: no pause-prediction heads (clients get no `Step` messages).
STT_NOHEADS_CONFIG: dict[str, Any] = {**STT_CONFIG, "extra_heads_num_heads": 0}

_CFG_VALUES = ["1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0"]
TTS_CONFIG: dict[str, Any] = {
    **_SHARED_LM,
    "dep_q": MIMI_N_Q,
    "delays": [0, 0] + [2] * (MIMI_N_Q - 1),
    "cross_attention": True,
    "demux_second_stream": True,
    "depformer_dim": 32,
    "depformer_num_heads": 2,
    "depformer_num_layers": 1,
    "depformer_dim_feedforward": 64,
    "depformer_multi_linear": True,
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "depformer_weights_per_step_schedule": [0, 1, 2, 3, 4, 4, 4, 4],
    "depformer_low_rank_embeddings": 16,
    "conditioners": {
        "speaker_wavs": {"type": "tensor", "tensor": {"dim": VOICE_DIM}},
        "cfg": {
            "type": "lut",
            "lut": {
                "n_bins": len(_CFG_VALUES),
                "dim": 16,
                "tokenizer": "noop",
                "possible_values": _CFG_VALUES,
            },
        },
        "control": {
            "type": "lut",
            "lut": {"n_bins": 1, "dim": 64, "tokenizer": "noop", "possible_values": ["ok"]},
        },
    },
    "fuser": {"sum": ["control", "cfg"], "cross": ["speaker_wavs"]},
    # Short delays keep tests quick while exercising the same code as the 1.6B model.
    "tts_config": {"audio_delay": 0.32, "second_stream_ahead": 2},
    "model_type": "tts",
}

# Text used to train the tiny SentencePiece model: mixed English/French so both tokenise.
_CORPUS = [
    "hello world this is a tiny test of the kyutai streaming speech models",
    "the quick brown fox jumps over the lazy dog again and again",
    "bonjour tout le monde ceci est un petit test de synthese vocale",
    "speech to text and text to speech in real time for everyone",
    "one two three four five six seven eight nine ten",
]


def default_cache_dir() -> Path:
    env = os.environ.get("KYUTAI_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".cache" / "kyutai-tiny"


def tiny_root(cache_dir: Path) -> Path:
    return cache_dir / f"v{TINY_VERSION}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def _train_tokenizer(dest: Path) -> None:
    import io

    import sentencepiece as spm

    # In-memory input and output: no temporary paths end up inside the model (determinism).
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 4),
        model_writer=buf,
        vocab_size=TEXT_CARD,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        seed_sentencepiece_size=1000,
        num_threads=1,
        minloglevel=2,
    )
    dest.write_bytes(buf.getvalue())


def _calibration_audio(gen: torch.Generator) -> torch.Tensor:
    # Noise and tones at several levels: enough variety to spread latents over the codebooks.
    t = torch.arange(24000 * 2) / 24000
    sigs = []
    for i in range(16):
        amp = 0.05 + 0.6 * torch.rand((), generator=gen)
        freq = 80 + 2000 * torch.rand((), generator=gen)
        tone = torch.sin(2 * torch.pi * freq * t) * (
            0.5 + 0.5 * torch.sin(2 * torch.pi * t * (i + 1))
        )
        noise = torch.randn(t.shape, generator=gen) * (i % 4) / 4
        sigs.append(amp * (tone + noise))
    return torch.stack(sigs)[:, None, :]


def _init_mimi_codebooks(mimi: Any, gen: torch.Generator, *, silence_code: bool = False) -> None:
    """A random Mimi has all-zero codebooks: every frame quantises to one code and decodes to a
    constant signal. Seed each codebook with latents of real-ish audio (like a k-means init), so
    codes follow the input and decoded audio varies with the codes.

    With `silence_code` (the STT's Mimi), code 0 of the first codebook is the latent of silence
    itself, so silence and faint noise read as that code and speech as others."""
    latent = mimi._encode_to_unquantized_latent(_calibration_audio(gen))
    silent = mimi._encode_to_unquantized_latent(torch.zeros(1, 1, 1920 * 4))[..., -1:]
    for rvq in (mimi.quantizer.rvq_first, mimi.quantizer.rvq_rest):
        z = rvq.input_proj(latent)  # [B, D, T]
        vectors = z.transpose(1, 2).reshape(-1, z.shape[1])
        residual = vectors
        noise = 0.01 * float(vectors.std()) if silence_code else 0.01
        for layer in rvq.vq.layers:
            cb = layer._codebook
            idx = torch.randint(0, residual.shape[0], (cb.embedding_sum.shape[0],), generator=gen)
            centroids = residual[idx] + noise * torch.randn(
                (idx.numel(), residual.shape[1]), generator=gen
            )
            if silence_code and rvq is mimi.quantizer.rvq_first and layer is rvq.vq.layers[0]:
                centroids[0] = rvq.input_proj(silent)[0, :, 0]
            cb.embedding_sum.copy_(centroids)
            cb.cluster_usage.fill_(1.0)
            cb._initialized.fill_(1.0)
            cb._embedding = None
            dist = torch.cdist(residual, centroids)
            residual = residual - centroids[dist.argmin(dim=1)]


def _key_mimi_for_stt(mimi: Any) -> None:
    """Make the STT's random Mimi encoder tell silence from speech. Without biases it maps
    silence to a zero latent whose size follows the loudness of the audio (with them, a
    constant offset drowns it). Its transformer's attention is switched off (zero layer
    scale): with random weights it averages all past frames into the present, so speech
    lingered on for seconds in the latent of the silence after it."""
    for name, param in mimi.named_parameters():
        if name.startswith(("encoder.", "encoder_transformer.", "downsample.")) and name.endswith(
            "bias"
        ):
            param.zero_()
    for layer in mimi.encoder_transformer.transformer.layers:
        layer.layer_scale_1.scale.zero_()


def _scale_decoder_output(mimi: Any, gen: torch.Generator) -> None:
    """Random conv stacks give a tiny signal on a DC offset; rescale the last decoder conv so
    decoded audio is centred and clearly audible (RMS about 0.2)."""
    last: torch.nn.Conv1d | None = None
    for module in mimi.decoder.modules():
        if isinstance(module, torch.nn.Conv1d):
            last = module
    assert last is not None and last.bias is not None
    # Without biases the output is driven by the codes alone (biases add a fixed pattern).
    for module in mimi.decoder.modules():
        if (
            isinstance(module, torch.nn.Conv1d | torch.nn.ConvTranspose1d)
            and module.bias is not None
        ):
            module.bias.zero_()
    codes = torch.randint(0, AUDIO_CARD, (4, MIMI_N_Q, 25), generator=gen)
    y = mimi.decode(codes)
    a = 0.2 / float((y - y.mean()).std().clamp(min=1e-6))
    last.weight.mul_(a)
    last.bias.copy_(last.bias * a - a * float(y.mean()) + (1 - a) * 0 * last.bias)
    # y' = a * (y - b) + b'  with mean(y') = 0  =>  b' = a * b - a * mean(y)


_SPLIT_PROJ = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<kind>in|out)_projs\.(?P<i>\d+)\.weight$")


def legacy_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Attention projections under the names Kyutai's released checkpoints use.

    moshi's modules hold one linear per step (`in_projs.{i}.weight`); the real checkpoints (and
    Kyutai's Rust loader) have one stacked tensor, `in_proj_weight` / `out_proj.weight`, that
    moshi splits in a load hook. Saving the tiny models that way makes them go through that
    hook, the path the real weights take."""
    out: dict[str, torch.Tensor] = {}
    stacked: dict[str, dict[int, torch.Tensor]] = {}
    for key, value in state.items():
        m = _SPLIT_PROJ.match(key)
        if m is None:
            out[key] = value
            continue
        name = m["prefix"] + ("in_proj_weight" if m["kind"] == "in" else "out_proj.weight")
        stacked.setdefault(name, {})[int(m["i"])] = value
    for name, parts in stacked.items():
        out[name] = torch.cat([parts[i] for i in sorted(parts)], dim=0).contiguous()
    return out


def _save(module: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(legacy_names(state), str(path))


def _lm_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    kwargs = copy.deepcopy(config)
    for key in (
        "moshi_name",
        "mimi_name",
        "tokenizer_name",
        "mimi_config_name",
        "lora_name",
        "model_type",
        "lm_gen_config",
        "stt_config",
        "tts_config",
        "model_id",
    ):
        kwargs.pop(key, None)
    return kwargs


def _write_model_dir(dest: Path, config: dict[str, Any], seed: int, tokenizer: Path) -> None:
    from moshi.models import loaders

    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    lm = loaders.get_moshi_lm(None, lm_kwargs=_lm_kwargs(config), device="cpu", dtype=torch.float32)
    with torch.no_grad():
        # Sharper text logits make the random STT emit varied tokens (so words appear).
        lm.text_linear.weight.mul_(8.0)
    torch.manual_seed(seed + 1)
    mimi = loaders.get_mimi(None, MIMI_CONFIG, device="cpu", num_codebooks=MIMI_N_Q)
    stt = config.get("model_type") == "stt"
    with torch.no_grad():
        if stt:
            _key_mimi_for_stt(mimi)
        _init_mimi_codebooks(mimi, gen, silence_code=stt)
        _scale_decoder_output(mimi, gen)
        if stt:
            _key_stt_to_speech(lm, mimi, gen)
    _save(lm, dest / "model.safetensors")
    _save(mimi, dest / "mimi.safetensors")
    _write_json(dest / "mimi_config.json", MIMI_CONFIG)
    _write_json(dest / "config.json", config)
    (dest / "tokenizer.model").write_bytes(tokenizer.read_bytes())


def _write_voices(dest: Path, seed: int) -> None:
    from safetensors.torch import save_file

    for idx, voice in enumerate(TINY_VOICES):
        gen = torch.Generator().manual_seed(seed + 100 + idx)
        emb = torch.randn((1, VOICE_DIM, VOICE_FRAMES), generator=gen)
        path = dest / (voice + VOICE_SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"speaker_wavs": emb.contiguous()}, str(path))


def _silence_codes(mimi: Any, gen: torch.Generator) -> set[int]:
    """First-codebook codes Mimi gives to silence and to faint noise (a quiet room, decoded
    Opus silence)."""
    frames = [torch.zeros(1, 1, 1920 * 4)]
    for level in (1e-4, 3e-4, 1e-3, 3e-3):
        frames.append(level * torch.randn((1, 1, 1920 * 4), generator=gen))
    codes = mimi.encode(torch.cat(frames))  # [B, n_q, T]
    return {int(c) for c in codes[:, 0].flatten()}


def _key_stt_to_speech(lm: Any, mimi: Any, gen: torch.Generator) -> None:
    """Give the random tiny STT audible mechanics: silence reads as padding, speech reads as a
    stream of (meaningless) words, and the pause heads rise over a sustained silence.

    Every transformer layer is made an identity (zero output projections), except for one
    attention head (`_key_pause_heads`), so the text head sees the embedding of the current
    frame's first Mimi code. Codes are grouped onto basis vectors: the silence group maps to
    the padding token, other groups map to word pieces, with every third group a word boundary.
    The last basis vector is left free for the pause feature.
    """
    dim = lm.text_linear.weight.shape[1]
    card = lm.emb[0].weight.shape[0]
    silence = _silence_codes(mimi, gen)
    for name, param in lm.transformer.named_parameters():
        if "out_projs" in name or "linear_out" in name:
            param.zero_()
    for emb in list(lm.emb)[1:]:
        emb.weight.zero_()
    lm.text_emb.weight.zero_()
    groups = dim - 2  # word groups 1..dim-2; dim-1 is the pause feature
    emb0 = torch.zeros_like(lm.emb[0].weight)
    for code in range(card):
        # card - 1 is the initial token: the model's first step reads as silence.
        group = 0 if (code in silence or code == card - 1) else 1 + code % groups
        emb0[code, group] = 1.0
    lm.emb[0].weight.copy_(emb0)
    text = torch.zeros_like(lm.text_linear.weight)  # [text_card, dim]
    n_text = text.shape[0]
    text[3, 0] = 10.0  # silence -> padding
    for group in range(1, groups + 1):
        token = 0 if group % 3 == 0 else 4 + (group * 7) % (n_text - 4)
        text[token, group] = 10.0
    lm.text_linear.weight.copy_(text)
    if len(lm.extra_heads):
        _key_pause_heads(lm, feature=dim - 1)


def _key_pause_heads(lm: Any, feature: int, scale: float = 0.02) -> None:
    """Pause heads that follow a sustained silence, computed by moshi's own forward pass.

    The residual stream entering the first layer is the one-hot `e_g` of the frame's code
    group (g = 0: silence). Its RMS norm is `sqrt(dim) * e_g`. In the first layer, attention
    head 0 has zero queries and keys, so it attends uniformly to every cached frame, and the
    STT's `context` (PAUSE_WINDOW frames) limits that to the last PAUSE_WINDOW frames; its
    value reads `[g == 0] - PAUSE_VOICED_WEIGHT * [g != 0]`. Its output, the window's mean
    silence score `f`, is written (times `scale`, small so the norm barely moves) into the free
    residual dimension `feature`. Everything else stays an identity, so after `out_norm` each
    pause head (a linear layer + softmax in LMGen, class 0 read as "paused") sees `g` and `f`.
    Head i's "paused" logit is
        PAUSE_SLOPE * (PAUSE_WINDOW * f - PAUSE_HALF_FRAMES[i]) - PAUSE_VOICED_DROP * [g != 0]
    against 0 for class 1 and -30 for classes 2-5. With s silent and v voiced frames in the
    window, PAUSE_WINDOW * f = s - PAUSE_VOICED_WEIGHT * v: any voiced frame keeps it at or
    below -1 (heads near 0), and once the window is all silence it is PAUSE_WINDOW, where head
    2 reads sigmoid(3.5 * 0.75) = 0.93. Short gaps between words stay low, a pause rises as
    soon as it has lasted the window, a voiced frame drops it at once.
    """
    dim = lm.text_linear.weight.shape[1]
    root = dim**0.5  # RMS norm of a one-hot vector
    attn = lm.transformer.layers[0].self_attn
    head_dim = dim // attn.num_heads
    in_proj = torch.zeros_like(attn.in_projs[0].weight)  # [3 * dim, dim]: q, k, v
    in_proj[2 * dim + 0, 0] = 1.0 / root  # head 0, channel 0 of v: [g == 0] ...
    in_proj[2 * dim + 0, 1:feature] = -PAUSE_VOICED_WEIGHT / root  # ... - weight * [g != 0]
    attn.in_projs[0].weight.copy_(in_proj)
    out_proj = torch.zeros_like(attn.out_projs[0].weight)  # [dim, num_heads * head_dim]
    out_proj[feature, 0 * head_dim + 0] = scale
    attn.out_projs[0].weight.copy_(out_proj)
    lm.out_norm.alpha.fill_(1.0)
    for index, head in enumerate(lm.extra_heads):
        # Logits in units of the normalised stream: a one-hot group reads `root`, the feature
        # `root * scale * f` (the norm's 1 + (scale * f)^2 term shifts them by under 1%).
        weight = torch.zeros_like(head.weight)  # [classes, dim]
        bias = -PAUSE_SLOPE * PAUSE_HALF_FRAMES[index]
        weight[0, :feature] = (bias - PAUSE_VOICED_DROP) / root
        weight[0, 0] = bias / root
        weight[0, feature] = PAUSE_SLOPE * PAUSE_WINDOW / (root * scale)
        weight[2:, :feature] = -30.0 / root
        head.weight.copy_(weight)


def _drop_pause_heads(src: Path, dest: Path) -> None:
    """The same STT without its pause heads (like stt-2.6b-en), as a separate checkpoint."""
    from safetensors.torch import load_file, save_file

    dest.mkdir(parents=True, exist_ok=True)
    state = load_file(str(src / "model.safetensors"))
    save_file(
        {k: v for k, v in state.items() if not k.startswith("extra_heads.")},
        str(dest / "model.safetensors"),
    )
    for name in ("mimi.safetensors", "mimi_config.json", "tokenizer.model"):
        (dest / name).write_bytes((src / name).read_bytes())
    _write_json(dest / "config.json", STT_NOHEADS_CONFIG)


def ensure_tiny_checkpoints(cache_dir: Path | None = None) -> Path:
    """Generate (once) and return the root holding `stt/`, `stt-noheads/`, `tts/`,
    `tts-voices/`, and the keyed full-duplex `moshi/` and `moshi-stubborn/`."""
    root = tiny_root(cache_dir or default_cache_dir())
    if (root / "COMPLETE").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    log.info("generating tiny random checkpoints in %s", root)
    # Build in a temporary sibling and rename, so concurrent processes never see half a cache.
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=root.parent))
    tok = tmp / "tokenizer.model"
    _train_tokenizer(tok)
    _write_model_dir(tmp / "stt", STT_CONFIG, SEED, tok)
    _drop_pause_heads(tmp / "stt", tmp / "stt-noheads")
    _write_model_dir(tmp / "tts", TTS_CONFIG, SEED + 10, tok)
    _write_voices(tmp / "tts-voices", SEED)
    from inference.tiny_moshi import write_moshi_dirs  # imports this module

    write_moshi_dirs(tmp, tok, SEED + 20)
    tok.unlink()
    (tmp / "COMPLETE").write_text("ok\n")
    try:
        tmp.rename(root)
    except OSError:
        # Another process won the race; its copy is identical.
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return root
