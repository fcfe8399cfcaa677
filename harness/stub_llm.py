"""A local stand-in for the LLM: the OpenAI chat-completions protocol with scripted replies.

It speaks the real wire format (SSE `chat.completion.chunk`s, `[DONE]`, tool-call deltas,
`GET /v1/models`) so the real `openai` client and livekit-plugins-openai talk to it unchanged.
Runs on its own thread and event loop, so it answers whatever the test's loop is doing.
`python -m harness.stub_llm --port 8000` runs it standalone for offline development.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MODEL = "stub-llm"
# A reply that takes ~15 s to speak: what interruption tests and the barge-in bench talk over.
LONG_ANSWER = (
    "Let me tell you a long story about the planets of our solar system, starting with "
    "Mercury, the smallest and closest to the sun, then Venus with its thick clouds, then "
    "our own Earth, then Mars the red planet, then the giants Jupiter and Saturn, and finally "
    "the ice giants Uranus and Neptune, far away in the cold and the dark."
)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    """One scripted answer: text streamed in word chunks, and/or tool calls."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    first_token_delay_s: float = 0.0
    token_interval_s: float = 0.0
    reasoning: str = ""  # sent as `reasoning_content` deltas, as reasoning servers do
    status: int = 200  # non-200 answers with an OpenAI-style error body
    hang: bool = False  # never answers (for client timeouts)


def default_responder(request: dict[str, Any]) -> Reply:
    """Answer every turn with a short sentence that mentions what the user said."""
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    heard = str(users[-1].get("content", "")) if users else ""
    if not heard.strip():
        return Reply(text="Hello! I am the test assistant. How can I help you today?")
    return Reply(text="I heard you. That is a good question, let me think about it.")


class StubLLM:
    def __init__(
        self,
        replies: list[Reply] | None = None,
        responder: Callable[[dict[str, Any]], Reply] = default_responder,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._scripted = list(replies or [])
        self.responder = responder
        self._host, self._port = host, port
        self.requests: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # time.monotonic() of each request, in order
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    def start(self) -> StubLLM:
        self._thread = threading.Thread(target=self._serve, name="stub-llm", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("stub LLM did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._runner is None:
            return
        if self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(timeout=10)

    def __enter__(self) -> StubLLM:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget queued replies and recorded requests (between tests sharing one stub)."""
        with self._lock:
            self._scripted.clear()
            self.requests.clear()
            self.received_at.clear()
            self.responder = default_responder

    def push(self, *replies: Reply) -> None:
        """Queue replies used, in order, before falling back to the responder."""
        with self._lock:
            self._scripted.extend(replies)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self._host, self._port)
        self._loop.run_until_complete(site.start())
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    # --- handlers ----------------------------------------------------------------------
    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "tests"}]}
        )

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.received_at.append(time.monotonic())
            if self._scripted:
                return self._scripted.pop(0)
        return self.responder(body)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "`messages` must be a list")
        reply = self._next_reply(body)
        if reply.hang:
            assert self._stopping is not None
            await self._stopping.wait()  # until the client gives up or the stub stops
            return _error(503, "stub stopping")
        if reply.status != 200:
            return _error(reply.status, "scripted failure")
        if reply.first_token_delay_s:
            await asyncio.sleep(reply.first_token_delay_s)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response(_full_completion(completion_id, created, reply))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if reply.token_interval_s:
                await asyncio.sleep(reply.token_interval_s)

        await send({"role": "assistant", "content": ""})
        for piece in _pieces(reply.reasoning):
            await send({"reasoning_content": piece})
        for piece in _pieces(reply.text):
            await send({"content": piece})
        for index, call in enumerate(reply.tool_calls):
            await send(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{uuid.uuid4().hex[:8]}",
                            "type": "function",
                            "function": {
                                "name": call.name,
                                "arguments": json.dumps(call.arguments),
                            },
                        }
                    ]
                }
            )
        await send({}, finish="tool_calls" if reply.tool_calls else "stop")
        usage = {
            "prompt_tokens": 10,
            "completion_tokens": len(reply.text.split()),
            "total_tokens": 10 + len(reply.text.split()),
        }
        await resp.write(
            f"data: {json.dumps({'id': completion_id, 'object': 'chat.completion.chunk', 'created': created, 'model': MODEL, 'choices': [], 'usage': usage})}\n\n".encode()  # noqa: E501
        )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _pieces(text: str) -> list[str]:
    """Split text the way LLM tokens arrive: words with their leading space, some split."""
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        token = word if i == 0 else " " + word
        if len(token) > 6:
            out.extend([token[:4], token[4:]])
        elif token:
            out.append(token)
    return out


def _full_completion(completion_id: str, created: int, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for i, c in enumerate(reply.tool_calls)
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "stub_error", "code": status}}, status=status
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible stub LLM")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    stub = StubLLM(host=args.host, port=args.port).start()
    print(f"stub LLM listening on {stub.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
