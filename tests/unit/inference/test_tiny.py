from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from inference import tiny
from inference.profiles import checkpoint_info, get_profile


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_determinism(tiny_cache: Path, tmp_path: Path) -> None:
    root = tiny.tiny_root(tiny_cache)
    for kind in ("stt", "stt-noheads", "tts"):
        for name in (
            "config.json",
            "model.safetensors",
            "mimi.safetensors",
            "mimi_config.json",
            "tokenizer.model",
        ):
            assert (root / kind / name).is_file()
    for voice in tiny.TINY_VOICES:
        assert (root / "tts-voices" / (voice + tiny.VOICE_SUFFIX)).is_file()
    other = tiny.ensure_tiny_checkpoints(tmp_path)
    assert _digest(other) == _digest(root)


def test_loads_through_moshi_loaders(tiny_cache: Path) -> None:
    profile = get_profile("tiny", tiny_cache)
    info = checkpoint_info(profile, "stt")
    assert info.stt_config["audio_delay_seconds"] == 0.5
    lm = info.get_moshi(device="cpu", dtype=torch.float32)
    assert len(lm.extra_heads) == 4 and lm.dep_q == 0
    mimi = info.get_mimi(device="cpu")
    assert mimi.frame_size == 1920 and mimi.cardinality == lm.card
    tok = info.get_text_tokenizer()
    assert tok.vocab_size() == tiny.TEXT_CARD
    tts_info = checkpoint_info(profile, "tts")
    tts_lm = tts_info.get_moshi(device="cpu", dtype=torch.float32)
    assert tts_lm.condition_provider is not None and tts_lm.dep_q == tiny.MIMI_N_Q
    # Codebooks are initialised, so different audio gives different codes.
    with torch.no_grad():
        a = mimi.encode(
            0.3 * torch.randn(1, 1, 1920 * 4, generator=torch.Generator().manual_seed(0))
        )
        b = mimi.encode(0.3 * torch.sin(torch.arange(1920 * 4) / 7.0)[None, None])
    assert not torch.equal(a, b)


def test_noheads_variant_is_the_same_stt_without_pause_heads(tiny_cache: Path) -> None:
    """`tiny-noheads` (like stt-2.6b-en): no pause heads, otherwise the tiny STT itself."""
    from moshi.models import LMGen

    from inference.metrics import Metrics
    from inference.stt_engine import SttEngine

    plain = checkpoint_info(get_profile("tiny-noheads", tiny_cache), "stt")
    headed = checkpoint_info(get_profile("tiny", tiny_cache), "stt")
    assert plain.raw_config["extra_heads_num_heads"] == 0
    mimi = plain.get_mimi(device="cpu")
    t = torch.arange(1920 * 12) / 24000
    audio = torch.cat([0.3 * torch.sin(2 * torch.pi * 180 * t), torch.zeros(1920 * 6)])
    tokens = []
    for info in (plain, headed):
        lm = info.get_moshi(device="cpu", dtype=torch.float32)
        gen = LMGen(lm, temp=0.0, temp_text=0.0)
        out = []
        with torch.no_grad(), mimi.streaming(1), gen.streaming(1):
            for i in range(0, audio.numel(), 1920):
                step = gen.step_with_extra_heads(mimi.encode(audio[None, None, i : i + 1920]))
                assert step is not None
                assert len(step[1]) == len(lm.extra_heads)
                out.append(int(step[0][0, 0, 0]))
        tokens.append(out)
    assert tokens[0] == tokens[1]
    assert any(tok > 3 for tok in tokens[0]) and tokens[0][-1] == 3  # words, then padding
    engine = SttEngine(
        get_profile("tiny-noheads", tiny_cache), batch_size=1, device="cpu", metrics=Metrics()
    )
    assert not engine.has_pause_heads


def test_weights_use_the_tensor_names_of_kyutai_checkpoints(tiny_cache: Path) -> None:
    """Stacked `in_proj_weight` / `out_proj.weight`, as in the released checkpoints and as
    Kyutai's Rust loader reads them; moshi splits them in its load hook when loading."""
    from safetensors import safe_open

    root = tiny.tiny_root(tiny_cache)
    for kind in ("stt", "tts"):
        for name in ("model.safetensors", "mimi.safetensors"):
            with safe_open(str(root / kind / name), "pt") as f:
                keys = list(f.keys())
            assert not [k for k in keys if "in_projs." in k or "out_projs." in k], (kind, name)
            assert any(k.endswith("self_attn.in_proj_weight") for k in keys), (kind, name)
            assert any(k.endswith("self_attn.out_proj.weight") for k in keys), (kind, name)


def test_legacy_names_round_trip_through_moshis_load_hook() -> None:
    from moshi.modules.transformer import StreamingMultiheadAttention

    torch.manual_seed(0)
    attn = StreamingMultiheadAttention(embed_dim=8, num_heads=2, causal=True, weights_per_step=3)
    state = attn.state_dict()
    legacy = tiny.legacy_names(state)
    assert set(legacy) == {"in_proj_weight", "out_proj.weight"}
    assert legacy["in_proj_weight"].shape == (3 * 24, 8)
    other = StreamingMultiheadAttention(embed_dim=8, num_heads=2, causal=True, weights_per_step=3)
    other.load_state_dict(legacy)  # strict: every split tensor is restored
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key]), key
