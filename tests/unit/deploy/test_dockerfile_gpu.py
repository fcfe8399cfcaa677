"""What the CUDA path needs from the image, checked without a Docker engine.

On CUDA the inference server compiles moshi's kernels with torch.compile (Triton builds each
launcher with a C compiler against the Python headers) and captures CUDA graphs; the image
must carry what that needs, and nothing in it may quietly switch it off.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

from .compose_helpers import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
# The last stage is the image that runs; earlier ones only build the widget.
FINAL_STAGE = re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[-1]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.multi-gpu.yml")


def _inference_services() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name in COMPOSE_FILES:
        services = yaml.safe_load((ROOT / name).read_text()).get("services", {})
        for key, svc in services.items():
            if "inference" in " ".join(map(str, svc.get("command", []))) and key.startswith(
                "inference"
            ):
                found.append((f"{name}:{key}", svc))
    return found


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_the_running_stage_has_a_c_compiler_and_python_headers() -> None:
    base = FINAL_STAGE.splitlines()[0]
    # Official python images ship Python.h, which Triton's launcher build includes.
    assert re.match(r"python:3\.11(-slim)?(-bookworm)?\b", base), base
    installs = " ".join(re.findall(r"apt-get install[^\n]*(?:\\\n[^\n]*)*", FINAL_STAGE))
    assert re.search(r"\b(build-essential|gcc)\b", installs), installs


def test_nothing_switches_compilation_or_graphs_off_behind_the_policy() -> None:
    for text in (FINAL_STAGE, *(str(svc) for _, svc in _inference_services())):
        assert "NO_TORCH_COMPILE" not in text
        assert "NO_CUDA_GRAPH" not in text


def test_compiled_kernels_are_cached_on_a_volume() -> None:
    env = dict(re.findall(r"\b(TORCHINDUCTOR_CACHE_DIR|TRITON_CACHE_DIR)=(\S+)", FINAL_STAGE))
    assert set(env) == {"TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"}
    services = _inference_services()
    # compose + the multi-GPU STT, TTS and Moshi ones
    assert len(services) == 4, [n for n, _ in services]
    for name, svc in services:
        mounts = {str(v).split(":")[1] for v in svc.get("volumes", [])}
        for path in env.values():
            assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), (name, path)
        assert _env(svc).get("KYUTAI_TORCH_COMPILE", "").startswith("${KYUTAI_TORCH_COMPILE")


def test_healthy_means_warmed_up() -> None:
    # The server opens its port after the warm-up, so build_info answering is the signal.
    for name, svc in _inference_services():
        assert "/api/build_info" in " ".join(svc["healthcheck"]["test"]), name


def test_the_locked_torch_is_a_cuda_build() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (torch,) = [p for p in lock["package"] if p["name"] == "torch"]
    # PyPI's Linux x86_64 torch wheels bring the CUDA runtime as packages; a CPU-only index
    # would not, and the image would silently run the models on CPU.
    assert torch["source"] == {"registry": "https://pypi.org/simple"}
    deps = {d["name"] for d in torch.get("dependencies", [])}
    assert any(d.startswith("nvidia-cudnn") for d in deps), deps
    assert "triton" in deps
