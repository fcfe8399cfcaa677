"""Run Kyutai's own Python Moshi server (`moshi.server` from the installed moshi package) on a
local checkpoint directory, for the interop suite.

    with start_moshi_py_server(model_dir, log_dir) as server:
        server.chat_url   # ws://127.0.0.1:PORT/api/chat (moshi.server's binary protocol)

moshi.server runs `main()` when imported and calls `torch.cuda.synchronize()` in its warm-up;
on a CPU machine the launcher stubs that call out (nothing else is changed) and runs the module
as `__main__` with `--device cpu --static none`. The checkpoint directory is laid out as a
Hugging Face cache snapshot of a repo (`local/tiny-moshi`), so moshi.server loads it exactly
as it loads a downloaded repo (offline), config, Mimi config and all: its command line has no
flag for a local Mimi config.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from .ports import free_port
from .procs import ManagedProcess, spawn, wait_until

_LAUNCHER = (
    "import runpy, sys, torch\n"
    "torch.cuda.synchronize = lambda *a, **k: None  # CPU: moshi.server's warm-up syncs CUDA\n"
    "sys.argv = ['moshi.server'] + sys.argv[1:]\n"
    "runpy.run_module('moshi.server', run_name='__main__')\n"
)


@dataclass
class MoshiPyServer:
    process: ManagedProcess
    port: int
    api_key: str = "unused"  # moshi.server has no auth

    @property
    def chat_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/chat"

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> MoshiPyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


REPO = "local/tiny-moshi"


def hub_snapshot(model_dir: Path, hub_cache: Path, repo: str = REPO) -> None:
    """`model_dir`'s files as the cached snapshot of `repo` (what huggingface_hub reads offline)."""
    revision = "0" * 40
    root = hub_cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        link = snapshot / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)


def start_moshi_py_server(
    model_dir: Path, log_dir: Path, *, timeout: float = 180.0
) -> MoshiPyServer:
    port = free_port()
    hub_cache = log_dir / "hf-hub"
    hub_snapshot(model_dir, hub_cache)
    args = [
        sys.executable,
        "-c",
        _LAUNCHER,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--static",
        "none",
        "--hf-repo",
        REPO,
    ]
    process = spawn(
        f"moshi-py-server-{port}",
        args,
        log_dir,
        env={
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(hub_cache),
            "OMP_NUM_THREADS": "1",
            "NO_CUDA_GRAPH": "1",
        },
    )
    try:
        wait_until(lambda: _listening(port), timeout=timeout, what="moshi.server", process=process)
    except BaseException:
        process.stop()
        raise
    return MoshiPyServer(process, port)
