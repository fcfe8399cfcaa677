"""Run the real inference server (`python -m inference serve`) as a subprocess (tests, benches).

    with start_inference_server(tmp_cache_dir, batch_size=2) as server:
        server.url       # ws://127.0.0.1:PORT   (append /api/asr-streaming or /api/tts_streaming)
        server.http_url  # http://127.0.0.1:PORT
        server.api_key   # "public_token"

The helper waits for `/api/build_info` to answer 200, fails fast (with the server's log) when the
process dies during start-up, and stops the server with SIGTERM (then SIGKILL) on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_API_KEY = "public_token"


@dataclass
class InferenceServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    api_key: str = DEFAULT_API_KEY
    _log_file: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stt_url(self) -> str:
        return f"{self.url}/api/asr-streaming"

    @property
    def tts_url(self) -> str:
        return f"{self.url}/api/tts_streaming"

    @property
    def chat_url(self) -> str:
        """Moshi's route: moshi.server's binary protocol; `?format=PcmMessagePack` for msgpack."""
        return f"{self.url}/api/chat"

    def tts_msgpack(self, query: str = "") -> str:
        """The TTS route in the msgpack format every Kyutai client asks for (without `format`
        the server answers a bare Ogg/Opus stream, as Kyutai's), plus `query` ("?a=b")."""
        extra = query.lstrip("?&")
        return f"{self.tts_url}?format=PcmMessagePack" + (f"&{extra}" if extra else "")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        close = getattr(self._log_file, "close", None)
        if close is not None:
            close()
        return int(self.process.returncode)

    def __enter__(self) -> InferenceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_inference_server(
    tmp_cache_dir: Path | str,
    *,
    batch_size: int = 4,
    tts_batch_size: int | None = None,
    models: str = "tiny",
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    log_dir: Path | str | None = None,
) -> InferenceServer:
    """Start `python -m inference serve` on a free 127.0.0.1 port and wait until it answers."""
    port = free_port()
    log_root = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="kyutai-"))
    log_root.mkdir(parents=True, exist_ok=True)
    log_path = log_root / f"inference-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "inference",
        "serve",
        "--models",
        models,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stt-batch-size",
        str(batch_size),
        "--tts-batch-size",
        str(tts_batch_size or batch_size),
        "--cache-dir",
        str(tmp_cache_dir),
        *extra_args,
    ]
    full_env = dict(os.environ)
    full_env.setdefault("NO_TORCH_COMPILE", "1")
    full_env.setdefault("NO_CUDA_GRAPH", "1")
    full_env.setdefault("HF_HUB_OFFLINE", "1")
    full_env.setdefault("KYUTAI_API_KEYS", DEFAULT_API_KEY)
    full_env.setdefault("OMP_NUM_THREADS", "1")
    if env:
        full_env.update(env)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
    )
    server = InferenceServer(process, port, log_path, _log_file=log_file)
    server.api_key = full_env["KYUTAI_API_KEYS"].split(",")[0].strip()
    return wait_until_ready(server, "inference server", timeout)


def wait_until_ready(server: InferenceServer, what: str, timeout: float) -> InferenceServer:
    """Until `/api/build_info` answers; stops the server and raises, with its log, when it
    dies or does not answer in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.stop()
            raise RuntimeError(
                f"{what} exited with {server.process.returncode}:\n{server.log()[-4000:]}"
            )
        if _ready(f"{server.http_url}/api/build_info"):
            return server
        time.sleep(0.2)  # polling interval for readiness, not synchronisation
    server.stop()
    raise TimeoutError(f"{what} not ready after {timeout}s:\n{server.log()[-4000:]}")


# ---- a minimal client written from docs/the Kyutai protocol (no server code imported) ----------
FRAME = 1920  # samples per 80 ms model frame at 24 kHz


def kyutai_pack(msg: dict[str, object]) -> bytes:
    """Client-side msgpack encoding as the protocol asks: single floats, bin type."""
    import msgpack

    out = msgpack.packb(msg, use_bin_type=True, use_single_float=True)
    assert isinstance(out, bytes)
    return out


def kyutai_unpack(data: bytes) -> dict[str, object]:
    import msgpack

    out = msgpack.unpackb(data, raw=False)
    assert isinstance(out, dict), out
    return out


async def kyutai_recv(ws: object, timeout: float = 30.0) -> dict[str, object] | None:
    """Next server message (a msgpack map), or None once the server closed the socket."""
    import asyncio

    import aiohttp

    assert isinstance(ws, aiohttp.ClientWebSocketResponse)
    msg = await asyncio.wait_for(ws.receive(), timeout)
    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
        return None
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    return kyutai_unpack(msg.data)


def speechlike(seconds: float, seed: int = 0) -> list[float]:
    """Deterministic voiced-sounding audio (tone under a syllable-rate envelope plus noise)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * 24000)
    t = np.arange(n) / 24000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * (2.5 + 0.3 * seed) * t)
    tone = np.sin(2 * np.pi * (150 + 25 * seed + 60 * np.sin(t)) * t)
    sig = 0.3 * env * tone + 0.05 * rng.standard_normal(n)
    return [float(x) for x in sig.astype(np.float32)]


async def wait_slots_free(server: InferenceServer, timeout: float = 10.0) -> None:
    """Until `/api/modules_info` shows no slot in use: a client's slot is freed when the server
    has seen its close, a moment after the client closed."""
    import asyncio

    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{server.http_url}/api/modules_info") as r:
                used = sum(int(m["used_slots"]) for m in await r.json())
            if not used:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"{used} slots still in use on {server.http_url}")
            await asyncio.sleep(0.05)  # polling a state endpoint, not a wait for an outcome
