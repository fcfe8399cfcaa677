"""docker-compose.yml's livekit service boots the real livekit-server, and its webhook reaches
the dispatcher signed with the deployment's key.

There is no Docker engine here: the test takes the service's command and environment from the
compose file, fills in the variables as compose would, points the compose names (redis,
dispatcher) and the ports at loopback, and runs the pinned livekit-server binary with them.
(The dev `livekit.yaml`, mounted there before, made the server exit at start-up: "api_key is
required to use webhooks", its webhook key being `devkey`.)
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from livekit import api

from harness.livekit_server import livekit_server_binary
from harness.ports import free_port
from harness.procs import http_ok, spawn, wait_until
from harness.redis import start_redis

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if values.get(name):
            return values[name]
        if op.endswith("-"):
            return arg
        raise AssertionError(f"docker-compose.yml requires {name}: {arg}")

    return VAR.sub(sub, text)


class WebhookSink:
    """Stands where the dispatcher listens: keeps each request's body and signature."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self._got = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                sink.requests.append((body, self.headers.get("Authorization", "")))
                sink._got.set()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait(self, timeout: float) -> bool:
        return self._got.wait(timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def exposed_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split("/")[0]) for p in service.get("expose", [])}


async def test_compose_livekit_boots_and_signs_webhooks_for_the_dispatcher(
    artifacts_dir: Path,
) -> None:
    services = COMPOSE["services"]
    service = services["livekit"]
    key, secret = "deploykey", secrets.token_hex(24)
    values = {"LIVEKIT_API_KEY": key, "LIVEKIT_API_SECRET": secret}
    environment = {k: interpolate(str(v), values) for k, v in service["environment"].items()}
    assert environment["LIVEKIT_KEYS"] == f"{key}: {secret}"
    config = yaml.safe_load(environment["LIVEKIT_CONFIG"])

    # as written: Redis and the dispatcher by their compose names, the deployment's key
    assert config["redis"]["address"].split(":")[0] in services
    assert config["webhook"]["api_key"] == key
    (hook,) = config["webhook"]["urls"]
    target = urlsplit(hook)
    assert target.hostname == "dispatcher" and target.port in exposed_ports(services["dispatcher"])
    assert "livekit" in services["dispatcher"]["depends_on"]

    # on loopback: a real Redis, a sink where the dispatcher would be, free ports
    logs = artifacts_dir / "logs"
    redis = start_redis(logs, "redis-compose")
    sink = WebhookSink()
    port = free_port()
    config["port"] = port
    config["rtc"].update(tcp_port=free_port(), udp_port=free_port(socket.SOCK_DGRAM))
    config["redis"]["address"] = redis.address
    config["webhook"]["urls"] = [f"http://127.0.0.1:{sink.port}{target.path}"]
    environment["LIVEKIT_CONFIG"] = yaml.safe_dump(config)
    command = [interpolate(str(a), values) for a in service["command"]]
    assert "--bind=0.0.0.0" in command
    command = [("--bind=127.0.0.1" if a == "--bind=0.0.0.0" else a) for a in command]
    process = spawn("livekit-compose", [livekit_server_binary(), *command], logs, env=environment)
    try:
        http_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: http_ok(http_url),
            timeout=30,
            what="livekit-server started from docker-compose.yml",
            process=process,
        )
        lkapi = api.LiveKitAPI(http_url, key, secret)
        try:
            await lkapi.room.create_room(api.CreateRoomRequest(name="compose-check"))
        finally:
            await lkapi.aclose()
        assert await asyncio.to_thread(sink.wait, 15), "no webhook reached the dispatcher URL"
        body, auth = sink.requests[0]
        event = api.WebhookReceiver(api.TokenVerifier(key, secret)).receive(body, auth)
        assert event.event == "room_started" and event.room.name == "compose-check"
    finally:
        process.stop()
        redis.stop()
        sink.close()
