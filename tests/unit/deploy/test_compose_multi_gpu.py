"""docker-compose.multi-gpu.yml: an override of docker-compose.yml splitting STT, TTS and the
LLM over three GPUs and running more workers. Checked merged, as `docker compose -f
docker-compose.yml -f docker-compose.multi-gpu.yml` sees it (no Docker engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .compose_helpers import README, ROOT, readme_table_vars, service_ports

BASE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OVERRIDE_TEXT = (ROOT / "docker-compose.multi-gpu.yml").read_text()
OVERRIDE = yaml.safe_load(OVERRIDE_TEXT)
UNION_LISTS = {"expose", "ports", "volumes"}


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of an override file: mappings merge, a few lists add up, the rest
    (command, healthcheck.test, devices…) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base[k], v, k) if k in base else v
        return out
    if isinstance(base, list) and isinstance(override, list) and key in UNION_LISTS:
        return base + [v for v in override if v not in base]
    return override


MERGED = merge(BASE, OVERRIDE)
SERVICES: dict[str, dict[str, Any]] = MERGED["services"]
ACTIVE = {n: s for n, s in SERVICES.items() if not s.get("profiles")}


def gpu_ids(service: dict[str, Any]) -> list[str]:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    return [i for d in devices for i in d.get("device_ids", [])]


def test_stt_tts_and_llm_each_have_their_own_gpu() -> None:
    assert gpu_ids(ACTIVE["inference-stt"]) == ["0"]
    assert gpu_ids(ACTIVE["inference-tts"]) == ["1"]
    assert gpu_ids(ACTIVE["llm"]) == ["2"]
    assert "--engines stt" in " ".join(ACTIVE["inference-stt"]["command"])
    assert "--engines tts" in " ".join(ACTIVE["inference-tts"]["command"])
    assert "inference" not in ACTIVE and "vllm" not in ACTIVE  # parked in a profile


def test_moshi_gets_a_gpu_of_its_own_when_asked_for() -> None:
    moshi = SERVICES["inference-moshi"]
    assert moshi["profiles"] == ["moshi"]  # not started unless `--profile moshi`
    assert gpu_ids(moshi) == ["3"]
    assert "--engines moshi" in " ".join(moshi["command"])
    others = [n for n in ("inference-stt", "inference-tts", "llm") if "3" in gpu_ids(ACTIVE[n])]
    assert not others


def test_more_workers_pointed_at_the_split_servers() -> None:
    agent = ACTIVE["agent"]
    assert agent["deploy"]["replicas"] >= 2
    assert "ports" not in agent  # replicas can't share host ports
    env = agent["environment"]
    checked = 0
    for key in ("KYUTAI_STT_URL", "KYUTAI_TTS_URL", "KYUTAI_LLM_URL"):
        url = urlsplit(env[key])
        assert url.hostname in ACTIVE, key
        assert url.port in service_ports(ACTIVE[url.hostname]), key
        assert url.hostname in agent["depends_on"], key
        checked += 1
    assert checked == 3
    for dep, spec in agent["depends_on"].items():
        assert dep in SERVICES
        assert dep in ACTIVE or spec.get("required") is False, dep


def test_every_variable_is_documented() -> None:
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", OVERRIDE_TEXT))
    assert referenced - readme_table_vars() - {"HF_TOKEN"} == set()
    assert "docker-compose.multi-gpu.yml" in README


def test_merged_result_passes_the_compose_schema(tmp_path: Path) -> None:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed")
    merged = tmp_path / "merged.yml"
    merged.write_text(yaml.safe_dump(MERGED))
    files = [str(merged), str(ROOT / "docker-compose.multi-gpu.yml")]
    result = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
