"""Which Moshi each profile loads, and how a legacy Moshi repo (no config.json) is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from inference import profiles
from inference.profiles import MOSHIKA, MOSHIKO, WeightsUnavailable, checkpoint_info, get_profile
from inference.settings import Settings


def test_profiles_name_their_moshi(tmp_path: Path) -> None:
    assert get_profile("default", tmp_path).moshi_repo == MOSHIKO
    assert get_profile("default", tmp_path, moshi_repo=MOSHIKA).moshi_repo == MOSHIKA
    assert get_profile("tiny", tmp_path).moshi_repo == "tiny/moshi"
    stubborn = get_profile("tiny", tmp_path, moshi_repo="tiny/moshi-stubborn")
    assert stubborn.moshi_repo == "tiny/moshi-stubborn"
    full = get_profile("full-random", tmp_path)
    cfg = full.random_config("moshi")
    assert cfg is not None and (cfg["dim"], cfg["num_layers"], cfg["n_q"]) == (4096, 32, 16)
    with pytest.raises(ValueError, match="tiny profile"):
        get_profile("default", tmp_path, moshi_repo="tiny/moshi")
    with pytest.raises(ValueError, match="tiny/<dir>"):
        get_profile("tiny", tmp_path, moshi_repo=MOSHIKA)


def test_unknown_tiny_moshi_is_a_clear_error(tiny_cache: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="no tiny checkpoint 'moshi-loud'"):
        checkpoint_info(get_profile("tiny", tiny_cache, moshi_repo="tiny/moshi-loud"), "moshi")


def _fake_hub(monkeypatch: pytest.MonkeyPatch, files: Path, missing: type[Exception]) -> list[str]:
    """moshi's loaders see a hub where `config.json` is missing (`missing` is raised) and every
    other file of the repo is a local file."""
    from moshi.models import loaders

    asked: list[str] = []

    def download(repo: str, filename: str, **kwargs: Any) -> str:
        asked.append(filename)
        if filename == "config.json":
            raise missing(f"{repo} has no {filename}")
        path = files / filename
        path.write_bytes(b"")
        return str(path)

    monkeypatch.setattr(loaders, "hf_hub_download", download)
    return asked


def test_legacy_moshi_repo_is_read_as_moshi_7b(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """moshiko/moshika have no config.json: moshi assumes the 7B config, which is right for
    them, and that must not be reported as being offline."""
    asked = _fake_hub(monkeypatch, tmp_path, EntryNotFoundError)
    info = checkpoint_info(get_profile("default", tmp_path), "moshi")
    assert info.model_type == "moshi" and info.lm_config is None  # moshi's 7B defaults
    assert info.lm_gen_config == {}  # moshi.server's sampling defaults
    assert "model.safetensors" in asked and "tokenizer_spm_32k_3.model" in asked


def test_offline_moshi_download_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from moshi.models import loaders

    def offline(repo: str, filename: str, **kwargs: Any) -> str:
        raise LocalEntryNotFoundError("offline and not in the cache")

    monkeypatch.setattr(loaders, "hf_hub_download", offline)
    with pytest.raises(WeightsUnavailable, match="kyutai/moshiko-pytorch-bf16"):
        checkpoint_info(get_profile("default", tmp_path), "moshi")


def test_download_fetches_moshi_only_when_served(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fetched: list[str] = []
    monkeypatch.setattr(profiles, "checkpoint_info", lambda p, kind: fetched.append(kind))
    profiles.download(get_profile("default", tmp_path), [], frozenset({"stt"}))
    assert fetched == ["stt"]
    fetched.clear()
    profiles.download(get_profile("default", tmp_path), [], frozenset({"stt", "moshi"}))
    assert fetched == ["stt", "moshi"]


def test_engines_setting() -> None:
    assert Settings().engine_set == {"stt", "tts"}
    assert Settings(engines="moshi, stt").engine_set == {"stt", "moshi"}
    assert Settings(engines="moshi", only="tts").engine_set == {"tts"}  # the older flag wins
    assert Settings(only="both").engine_set == {"stt", "tts"}
    with pytest.raises(ValueError, match="engines must list some of stt, tts, moshi"):
        Settings(engines="stt,llm")
    with pytest.raises(ValueError, match="engines must list"):
        Settings(engines=" , ")
