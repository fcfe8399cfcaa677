"""A throwaway redis-server on a free loopback port (Debian's redis-server package)."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from .errors import PrerequisiteMissing
from .ports import free_port
from .procs import ManagedProcess, spawn, wait_until


@dataclass
class Redis:
    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        return self.process.stop()


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(log_dir: Path, name: str = "redis") -> Redis:
    """Start redis-server without persistence (PrerequisiteMissing when it is not installed)."""
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise PrerequisiteMissing("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = spawn(name, [redis_bin, *args], log_dir)
    wait_until(lambda: redis_ping(port), timeout=15, what="redis", process=process)
    return Redis(process, port)
