"""Voice lookup in the kyutai/tts-voices layout, and voice embeddings given inline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import torch


class UnknownVoice(ValueError):
    pass


def voice_suffix(model_id: Mapping[str, Any] | None) -> str:
    """Suffix of the voice files made for a TTS model, from its config's `model_id`.

    Voice embeddings are Mimi latents tied to one TTS checkpoint: `kyutai/tts-voices` names
    each file `<voice>.<sig>@<epoch>.safetensors` after the model it was made for (as moshi's
    `TTSModel.from_checkpoint_info` does)."""
    if not model_id or "sig" not in model_id or "epoch" not in model_id:
        raise ValueError("the TTS config has no model_id {sig, epoch}: cannot name its voice files")
    return f".{model_id['sig']}@{model_id['epoch']}.safetensors"


def normalize_voice_name(name: str, suffix: str) -> str:
    """Validate a voice path from a client and strip the embedding suffix if present."""
    name = name.strip()
    if not name or len(name) > 300:
        raise UnknownVoice("voice name is empty or too long")
    p = PurePosixPath(name)
    if (
        p.is_absolute()
        or any(part in ("..", "") for part in p.parts)
        or "\\" in name
        or "//" in name
    ):
        raise UnknownVoice(f"invalid voice path {name!r}")
    if name.endswith(suffix):
        name = name[: -len(suffix)]
    return name


def resolve_voice(name: str, *, voice_dir: Path | None, voice_repo: str, suffix: str) -> Path:
    """Local path of a voice's embedding file, fetching it from the hub when needed."""
    name = normalize_voice_name(name, suffix)
    if voice_dir is not None:
        path = voice_dir / (name + suffix)
        if not path.is_file():
            raise UnknownVoice(f"unknown voice {name!r}")
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(voice_repo, name + suffix))
    except Exception as exc:
        raise UnknownVoice(f"unknown voice {name!r} ({type(exc).__name__})") from exc


def load_voice_file(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    emb = load_file(str(path), device="cpu")["speaker_wavs"]
    return emb.float()


def embedding_from_message(values: Sequence[float], shape: Sequence[int]) -> torch.Tensor:
    """Tensor [1, dim, T] from a `Voice` message, validated against its declared shape."""
    if len(shape) != 3 or shape[0] != 1 or any(int(s) <= 0 for s in shape):
        raise UnknownVoice("voice shape must be [1, dim, T]")
    count = int(shape[0]) * int(shape[1]) * int(shape[2])
    if count != len(values):
        raise UnknownVoice(f"voice has {len(values)} values, shape says {count}")
    emb = torch.tensor(list(values), dtype=torch.float32).view(*(int(s) for s in shape))
    if not bool(torch.isfinite(emb).all()):
        raise UnknownVoice("voice embeddings contain NaN or infinity")
    return emb
