"""A real livekit-server on free loopback ports (from scripts/ensure-livekit-server.sh)."""

from __future__ import annotations

import functools
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from .ports import free_port
from .procs import ManagedProcess, http_ok, spawn, wait_until

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def livekit_server_binary() -> str:
    """Path of the pinned livekit-server (builds it on first use when Go is available)."""
    script = ROOT / "scripts" / "ensure-livekit-server.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"livekit-server is not available:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


@dataclass
class LiveKitServer:
    url: str
    http_url: str
    api_key: str
    api_secret: str
    port: int
    process: ManagedProcess

    def stop(self) -> int:
        return self.process.stop()


def start_livekit_server(
    log_dir: Path,
    *,
    name: str = "livekit-server",
    api_key: str = "testkey",
    api_secret: str | None = None,
    redis_address: str | None = None,
    webhook_url: str | None = None,
    timeout: float = 30.0,
) -> LiveKitServer:
    """Start livekit-server bound to 127.0.0.1 only, on free ports, and wait until it answers."""
    port = free_port()
    secret = api_secret or secrets.token_hex(24)  # >= 32 chars: required outside --dev
    config: dict[str, object] = {
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        # As livekit.yaml (the dev stack): media over UDP on the loopback interface only (the
        # ICE-over-TCP port would listen on every interface).
        "rtc": {
            "tcp_port": 0,
            "udp_port": free_port(socket.SOCK_DGRAM),
            "use_external_ip": False,
            "node_ip": "127.0.0.1",
            "enable_loopback_candidate": True,
            "interfaces": {"includes": ["lo"]},
        },
        "keys": {api_key: secret},
        "room": {"empty_timeout": 20, "departure_timeout": 5},
        "logging": {"level": "info"},
    }
    if redis_address:
        config["redis"] = {"address": redis_address}
    if webhook_url:
        config["webhook"] = {"api_key": api_key, "urls": [webhook_url]}
    args = [livekit_server_binary(), "--config-body", yaml.safe_dump(config)]
    process = spawn(name, args, log_dir)
    http_url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: http_ok(http_url), timeout=timeout, what=f"{name} on {http_url}", process=process
    )
    return LiveKitServer(
        url=f"ws://127.0.0.1:{port}",
        http_url=http_url,
        api_key=api_key,
        api_secret=secret,
        port=port,
        process=process,
    )
