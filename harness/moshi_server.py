"""Run Kyutai's Rust `moshi-server` on copies of the tiny models (the interop suite).

    server = start_moshi_server(work_dir)   # raises MoshiServerUnavailable when not built
    server.url / server.http_url / server.stt_url / server.tts_url / server.stop()

The binary comes from `scripts/ensure-moshi-server.sh --check` (built once, cached in
.cache/moshi-server); the copies and the config from `python -m inference.rust_copies`. Its
TTS module runs Kyutai's Python tts.py in the embedded interpreter, on this virtualenv's moshi.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from .inference_server import DEFAULT_API_KEY, REPO_ROOT, InferenceServer, wait_until_ready
from .ports import free_port


class MoshiServerUnavailable(RuntimeError):
    pass


def moshi_server_binary() -> str:
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "ensure-moshi-server.sh"), "--check"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise MoshiServerUnavailable(proc.stderr.strip() or "moshi-server is not built")
    return proc.stdout.strip()


def start_moshi_server(work_dir: Path, *, timeout: float = 300.0) -> InferenceServer:
    binary = moshi_server_binary()
    work_dir.mkdir(parents=True, exist_ok=True)
    copies = work_dir / "copies"
    env = dict(os.environ, NO_TORCH_COMPILE="1", NO_CUDA_GRAPH="1")
    config = subprocess.run(
        [sys.executable, "-m", "inference.rust_copies", "--out", str(copies)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    log_path = work_dir / f"moshi-server-{port}.log"
    # The embedded interpreter imports moshi from this virtualenv.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (sysconfig.get_paths()["purelib"], env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    log_file = log_path.open("wb")
    cmd = [
        binary,
        "worker",
        "--config",
        config,
        "--cpu",
        "--addr",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        cmd, cwd=work_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    server = InferenceServer(process, port, log_path, api_key=DEFAULT_API_KEY, _log_file=log_file)
    return wait_until_ready(server, "moshi-server", timeout)
