"""Copies of the tiny checkpoints that Kyutai's Rust `moshi-server` can serve, and its config.

`python -m inference.rust_copies --out DIR [--port PORT]` writes DIR/stt, DIR/tts, DIR/voices
and DIR/moshi-server.toml; then `moshi-server worker --config DIR/moshi-server.toml --cpu`.

What the Rust server needs that the tiny checkpoints do not give it:
- STT (its candle `BatchedAsr`): Mimi's architecture is hard-coded (moshi crate `mimi.rs`,
  `Config::v0_1`), so the tiny 4-filter Mimi cannot load. The copy gets a full-size Mimi with
  random weights whose codebooks are seeded with its own latents of voiced audio (no training),
  so that different sounds give different codes; and the tiny LM's audio embeddings grow to the
  full-size Mimi's 2048 codes (+1 initial token). The tiny LM's weights are kept, so it still
  babbles words, but its pause heads do not follow silence through a random Mimi.
- TTS (its `Py` module runs Kyutai's tts.py on our moshi package): only the config's path to
  the Mimi config must be a local file.
Tensor names are already Kyutai's (see `tiny.legacy_names`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from inference import tiny

AUDIO_VOCAB = 2049  # the full-size Mimi's 2048 codes + the initial token
FULL_MIMI_CODEBOOKS = 8  # what the tiny LM reads


def voiced_audio(seconds: float, seed: int) -> torch.Tensor:
    """Deterministic voiced-sounding audio: a gliding tone under a syllable-rate envelope."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 24000)) / 24000
    f0 = 110 + 40 * seed + 60 * torch.sin(0.7 * t)
    env = 0.5 + 0.5 * torch.sin(2 * torch.pi * (2.0 + 0.4 * seed) * t)
    tone = torch.sin(2 * torch.pi * f0 * t) + 0.4 * torch.sin(4 * torch.pi * f0 * t)
    noise = 0.05 * torch.randn(t.shape, generator=gen)
    return (0.25 * env * tone + noise).float()[None, None, :]


@torch.no_grad()
def seeded_full_mimi(seed: int = 0) -> Any:
    """A full-size Mimi, random weights, each codebook seeded with residuals of real latents."""
    from moshi.models import loaders

    torch.manual_seed(seed)
    mimi = loaders.get_mimi(None, device="cpu", num_codebooks=FULL_MIMI_CODEBOOKS)
    audio = torch.cat([voiced_audio(8.0, s) for s in range(4)], dim=-1)
    latent = mimi._encode_to_unquantized_latent(audio)  # [1, 512, T]
    gen = torch.Generator().manual_seed(seed)
    quantizers: list[Any] = [mimi.quantizer.rvq_first, mimi.quantizer.rvq_rest]
    for rvq in quantizers:
        z = rvq.input_proj(latent)[0].T  # [T, 256]
        for layer in rvq.vq.layers[:FULL_MIMI_CODEBOOKS]:
            cb = layer._codebook
            pick = torch.randint(0, z.shape[0], (cb.embedding_sum.shape[0],), generator=gen)
            jitter = 1e-3 * z.std() * torch.randn(cb.embedding_sum.shape, generator=gen)
            cb.embedding_sum.copy_(z[pick] + jitter)
            cb.cluster_usage.fill_(1.0)
            cb._initialized.fill_(True)
            # what this codebook leaves over goes to the next one (residual quantisation)
            nearest = torch.cdist(z, cb.embedding_sum).argmin(dim=1)
            z = z - cb.embedding_sum[nearest]
    return mimi


def grow_audio_embeddings(state: dict[str, torch.Tensor], card: int) -> dict[str, torch.Tensor]:
    """`emb.{i}.weight` of `card` + 1 rows → AUDIO_VOCAB rows; the initial token stays last."""
    gen = torch.Generator().manual_seed(7)
    out = dict(state)
    for key, w in state.items():
        if key.startswith("emb.") and key.endswith(".weight") and w.shape[0] == card + 1:
            grown = torch.randn((AUDIO_VOCAB, w.shape[1]), generator=gen) * w[:card].std()
            grown[:card] = w[:card]
            grown[AUDIO_VOCAB - 1] = w[card]
            out[key] = grown.to(w.dtype).contiguous()
    return out


def _config_toml(out: Path, stt_cfg: dict[str, Any], *, api_key: str) -> str:
    tr = {
        "d_model": stt_cfg["dim"],
        "num_heads": stt_cfg["num_heads"],
        "num_layers": stt_cfg["num_layers"],
        # candle derives the gated hidden size (11/4 d_model) only from 4 * d_model
        "dim_feedforward": 4 * stt_cfg["dim"],
        "context": 100,
        "max_period": stt_cfg["max_period"],
    }
    delay = round(stt_cfg["stt_config"]["audio_delay_seconds"] * 12.5)
    return f"""# Kyutai's moshi-server on tiny model copies (python -m inference.rust_copies).
# Run: moshi-server worker --config THIS --cpu --addr 127.0.0.1 --port P
static_dir = "{out}/static/"
log_dir = "{out}/logs"
instance_name = "tiny"
authorized_ids = ["{api_key}"]

[modules.asr]
path = "/api/asr-streaming"
type = "BatchedAsr"
lm_model_file = "{out}/stt/model.safetensors"
text_tokenizer_file = "{out}/stt/tokenizer.model"
audio_tokenizer_file = "{out}/stt/mimi.safetensors"
asr_delay_in_tokens = {delay}
batch_size = 1
temperature = 0.0

[modules.asr.model]
audio_vocab_size = {AUDIO_VOCAB}
text_in_vocab_size = {stt_cfg["text_card"] + 1}
text_out_vocab_size = {stt_cfg["text_card"]}
audio_codebooks = {stt_cfg["n_q"]}

[modules.asr.model.transformer]
d_model = {tr["d_model"]}
num_heads = {tr["num_heads"]}
num_layers = {tr["num_layers"]}
dim_feedforward = {tr["dim_feedforward"]}
causal = true
norm_first = true
bias_ff = false
bias_attn = false
context = {tr["context"]}
max_period = {tr["max_period"]}
use_conv_block = false
use_conv_bias = true
gating = "silu"
norm = "RmsNorm"
positional_embedding = "Rope"
conv_layout = false
conv_kernel_size = 3
kv_repeat = 1
max_seq_len = 4096

[modules.asr.model.extra_heads]
num_heads = {stt_cfg["extra_heads_num_heads"]}
dim = {stt_cfg["extra_heads_dim"]}

[modules.tts_py]
type = "Py"
path = "/api/tts_streaming"
text_tokenizer_file = "{out}/tts/tokenizer.model"
batch_size = 2
text_bos_token = 1

[modules.tts_py.py]
log_folder = "{out}/logs"
voice_folder = "{out}/voices"
default_voice = "expresso/ex03-ex01_happy_001_channel1_334s.wav"
cfg_coef = 2.0
cfg_is_no_text = true
padding_between = 1
n_q = 8
device = "cpu"
hf_repo = "kyutai/tts-1.6b-en_fr"
moshi_weight = "{out}/tts/model.safetensors"
mimi_weight = "{out}/tts/mimi.safetensors"
config_path = "{out}/tts/config.json"
tokenizer = "{out}/tts/tokenizer.model"
"""


def write_copies(out: Path, cache_dir: Path, *, api_key: str = "public_token") -> Path:
    """Write the Rust-servable copies and the server config; returns the config's path."""
    from safetensors.torch import load_file, save_file

    root = tiny.ensure_tiny_checkpoints(cache_dir)
    out = out.resolve()
    (out / "stt").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    (out / "static").mkdir(exist_ok=True)
    stt_cfg = json.loads((root / "stt" / "config.json").read_text())
    lm = load_file(str(root / "stt" / "model.safetensors"))
    save_file(grow_audio_embeddings(lm, stt_cfg["card"]), str(out / "stt" / "model.safetensors"))
    mimi = seeded_full_mimi()
    state = {k: v.detach().contiguous() for k, v in mimi.state_dict().items()}
    save_file(tiny.legacy_names(state), str(out / "stt" / "mimi.safetensors"))
    shutil.copy(root / "stt" / "tokenizer.model", out / "stt" / "tokenizer.model")
    # The Python TTS module loads the tiny files as they are; Kyutai's tts.py passes no Mimi
    # config, so the config must name a local one.
    for src, dest in (("tts", "tts"),):
        shutil.copytree(root / src, out / dest, dirs_exist_ok=True)
        cfg = json.loads((root / src / "config.json").read_text())
        cfg["mimi_config_name"] = f"file://{out / dest / 'mimi_config.json'}"
        (out / dest / "config.json").write_text(json.dumps(cfg, indent=2))
    shutil.copytree(root / "tts-voices", out / "voices", dirs_exist_ok=True)
    config = out / "moshi-server.toml"
    config.write_text(_config_toml(out, stt_cfg, api_key=api_key))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.rust_copies")
    parser.add_argument("--out", required=True, help="folder for the copies and the config")
    parser.add_argument("--cache-dir", default="", help="tiny checkpoints (generated if absent)")
    parser.add_argument("--api-key", default="public_token")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_TORCH_COMPILE", "1")
    os.environ.setdefault("NO_CUDA_GRAPH", "1")
    cache = Path(args.cache_dir) if args.cache_dir else tiny.default_cache_dir()
    config = write_copies(Path(args.out), cache, api_key=args.api_key)
    print(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
