"""Model profiles: which checkpoints to load, and loading them through moshi's own loaders."""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from inference import tiny

STT_1B = "kyutai/stt-1b-en_fr-candle"
STT_2B6 = "kyutai/stt-2.6b-en"
TTS_1B6 = "kyutai/tts-1.6b-en_fr"
MOSHIKO = "kyutai/moshiko-pytorch-bf16"
MOSHIKA = "kyutai/moshika-pytorch-bf16"
VOICE_REPO = "kyutai/tts-voices"


class WeightsUnavailable(RuntimeError):
    """Weights could not be fetched (offline, unknown repo, ...); the message says what to do."""


@dataclass(frozen=True)
class Profile:
    name: str
    stt_repo: str | None
    tts_repo: str | None
    voice_repo: str = VOICE_REPO
    # Local files replace the hub (tiny profile); None means "fetch from Hugging Face".
    local_root: Path | None = None
    # Build random weights of the real size from these configs (GPU benchmark only).
    random_stt_config: dict[str, Any] | None = None
    random_tts_config: dict[str, Any] | None = None
    moshi_repo: str | None = None
    random_moshi_config: dict[str, Any] | None = None

    def repo(self, kind: str) -> str | None:
        return {"stt": self.stt_repo, "tts": self.tts_repo, "moshi": self.moshi_repo}[kind]

    def random_config(self, kind: str) -> dict[str, Any] | None:
        return {
            "stt": self.random_stt_config,
            "tts": self.random_tts_config,
            "moshi": self.random_moshi_config,
        }[kind]

    @property
    def voice_dir(self) -> Path | None:
        return None if self.local_root is None else self.local_root / "tts-voices"


_SHARED_FULL: dict[str, Any] = {
    "card": 2048,
    "n_q": 32,
    "dim": 2048,
    "hidden_scale": 4.125,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "causal": True,
    "existing_text_padding_id": 3,
    "max_period": 10000,
}
FULL_STT_1B: dict[str, Any] = {
    **_SHARED_FULL,
    "dep_q": 0,
    "delays": [0] * 33,
    "text_card": 8000,
    "num_heads": 16,
    "num_layers": 16,
    "context": 750,
    "extra_heads_num_heads": 4,
    "extra_heads_dim": 6,
    "max_period": 100000,  # as the real stt-1b-en_fr config (and Kyutai's Rust config)
    "stt_config": {"audio_silence_prefix_seconds": 0.0, "audio_delay_seconds": 0.5},
}
_CFG = ["1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0"]
FULL_TTS_1B6: dict[str, Any] = {
    **_SHARED_FULL,
    "dep_q": 32,
    "delays": [0, 0] + [2] * 31,
    "text_card": 8000,
    "num_heads": 16,
    "num_layers": 16,
    "context": 500,
    "cross_attention": True,
    "demux_second_stream": True,
    "depformer_dim": 1024,
    "depformer_num_heads": 16,
    "depformer_num_layers": 4,
    "depformer_dim_feedforward": 3072,
    "depformer_multi_linear": True,
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "depformer_weights_per_step_schedule": list(range(8)) + [8] * 8 + [9] * 8 + [10] * 8,
    "depformer_low_rank_embeddings": 128,
    "conditioners": {
        "speaker_wavs": {"type": "tensor", "tensor": {"dim": 512}},
        "cfg": {
            "type": "lut",
            "lut": {"n_bins": 7, "dim": 16, "tokenizer": "noop", "possible_values": _CFG},
        },
        "control": {
            "type": "lut",
            "lut": {"n_bins": 1, "dim": 2048, "tokenizer": "noop", "possible_values": ["ok"]},
        },
    },
    "fuser": {"sum": ["control", "cfg"], "cross": ["speaker_wavs"]},
    "tts_config": {"audio_delay": 1.28, "second_stream_ahead": 2},
    "model_id": {"sig": tiny.MODEL_SIG, "epoch": tiny.MODEL_EPOCH},
}


def _full_moshi_7b() -> dict[str, Any]:
    """moshiko's architecture (moshi's own defaults for legacy repos without a config.json)."""
    from moshi.models import loaders

    return {**copy.deepcopy(loaders._lm_kwargs), "model_type": "moshi"}


def get_profile(name: str, cache_dir: Path, *, moshi_repo: str = "") -> Profile:
    """The profile `name`; `moshi_repo` replaces its Moshi checkpoint (moshika, a tiny variant)."""
    profile = _base_profile(name, cache_dir)
    if moshi_repo:
        if profile.local_root is not None and not moshi_repo.startswith("tiny/"):
            raise ValueError(
                f"profile {name} loads local checkpoints: its Moshi must be tiny/<dir>, "
                f"not {moshi_repo!r}"
            )
        if profile.local_root is None and moshi_repo.startswith("tiny/"):
            raise ValueError(f"{moshi_repo} needs the tiny profile (--models tiny)")
        profile = replace(profile, moshi_repo=moshi_repo)
    return profile


def _base_profile(name: str, cache_dir: Path) -> Profile:
    if name == "default":
        return Profile("default", STT_1B, TTS_1B6, moshi_repo=MOSHIKO)
    if name == "stt-2.6b-en":
        return Profile("stt-2.6b-en", STT_2B6, TTS_1B6, moshi_repo=MOSHIKO)
    if name == "tiny":
        return Profile(
            "tiny",
            "tiny/stt",
            "tiny/tts",
            local_root=tiny.tiny_root(cache_dir),
            moshi_repo="tiny/moshi",
        )
    if name == "tiny-noheads":  # a tiny STT without pause heads, like stt-2.6b-en
        return Profile(
            "tiny-noheads",
            "tiny/stt-noheads",
            "tiny/tts",
            local_root=tiny.tiny_root(cache_dir),
            moshi_repo="tiny/moshi",
        )
    if name == "full-random":
        return Profile(
            "full-random",
            "random/stt-1b",
            "random/tts-1.6b",
            local_root=tiny.tiny_root(cache_dir),
            random_stt_config=FULL_STT_1B,
            random_tts_config=FULL_TTS_1B6,
            moshi_repo="random/moshi-7b",
            random_moshi_config=_full_moshi_7b(),
        )
    raise ValueError(f"unknown model profile {name!r}")


def configure_hf(timeout_s: float, *, probe: bool = True) -> bool:
    """Short hub timeouts, and offline mode when the hub cannot be reached at all.

    huggingface_hub retries unreachable hosts for about a minute; one quick TCP probe instead
    lets cached files load (offline mode) and missing ones fail at once with a clear message.
    Returns whether the hub looked reachable.
    """
    import socket
    import sys
    from urllib.parse import urlparse

    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(max(1, timeout_s))))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(max(1, timeout_s))))
    if not probe or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=min(timeout_s, 5.0)):
            return True
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010  (module read at import)
        return False


def checkpoint_info(profile: Profile, kind: str) -> Any:
    """`loaders.CheckpointInfo` for the `stt`, `tts` or `moshi` model of a profile."""
    from moshi.models import loaders

    repo = profile.repo(kind)
    assert repo is not None
    if profile.local_root is not None:
        # Tiny profiles: `tiny/<dir>` names a generated checkpoint. full-random: real configs,
        # the tiny Mimi/tokenizer files of `kind` only for their paths.
        tiny.ensure_tiny_checkpoints(profile.local_root.parent)
        d = profile.local_root / (repo.split("/", 1)[1] if repo.startswith("tiny/") else kind)
        if not (d / "config.json").exists():
            raise WeightsUnavailable(f"{repo}: no tiny checkpoint {d.name!r} in {d.parent}")
        return loaders.CheckpointInfo.from_hf_repo(
            repo,
            moshi_weights=d / "model.safetensors",
            mimi_weights=d / "mimi.safetensors",
            tokenizer=d / "tokenizer.model",
            config_path=d / "config.json",
            mimi_config_path=d / "mimi_config.json",
        )
    try:
        with warnings.catch_warnings():
            # moshi warns when a repo has no config.json and takes it for a legacy Moshi 7B
            # (moshiko/moshika really are such repos). Offline, the weights fetch that follows
            # fails, and that failure is what we report.
            warnings.simplefilter("ignore", UserWarning)
            return loaders.CheckpointInfo.from_hf_repo(repo)
    except Exception as exc:
        raise WeightsUnavailable(_explain(repo, exc)) from exc


def _explain(repo: str, exc: Exception) -> str:
    return (
        f"could not fetch the weights of {repo} from Hugging Face ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}). Check network access and HF_TOKEN, run "
        "`python -m inference download` on a connected machine with the same HF_HOME, or use "
        "`--models tiny` for random test models."
    )


def _random_lm(cfg: dict[str, Any], device: str, dtype: torch.dtype) -> Any:
    from moshi.models import loaders

    kwargs = tiny._lm_kwargs(cfg)
    return loaders.get_moshi_lm(None, lm_kwargs=copy.deepcopy(kwargs), device=device, dtype=dtype)


def load_lm(profile: Profile, kind: str, info: Any, device: str, dtype: torch.dtype) -> Any:
    cfg = profile.random_config(kind)
    if cfg is not None:
        return _random_lm(cfg, device, dtype)
    return info.get_moshi(device=device, dtype=dtype)


def load_mimi(profile: Profile, info: Any, device: str, num_codebooks: int) -> Any:
    from moshi.models import loaders

    if profile.random_stt_config is not None:
        # Real-size Mimi (default config, random weights) for compute benchmarks.
        return loaders.get_mimi(None, None, device=device, num_codebooks=num_codebooks)
    mimi = info.get_mimi(device=device)
    mimi.set_num_codebooks(num_codebooks)
    return mimi


def download(
    profile: Profile, voices: list[str], engines: frozenset[str] = frozenset({"stt", "tts"})
) -> None:
    """Prefetch every file the `engines` of a profile need (with huggingface_hub's progress
    bars); Moshi's 15 GB only when it is served."""
    from huggingface_hub import hf_hub_download

    if profile.local_root is not None:
        tiny.ensure_tiny_checkpoints(profile.local_root.parent)
        return
    from inference.voices import voice_suffix

    if "stt" in engines:
        checkpoint_info(profile, "stt")
    if "moshi" in engines:
        checkpoint_info(profile, "moshi")
    if "tts" not in engines:
        return
    tts_info = checkpoint_info(profile, "tts")
    suffix = voice_suffix((tts_info.raw_config or {}).get("model_id") or tts_info.model_id)
    for voice in voices:
        try:
            hf_hub_download(profile.voice_repo, voice + suffix)
        except Exception as exc:
            raise WeightsUnavailable(_explain(profile.voice_repo, exc)) from exc
