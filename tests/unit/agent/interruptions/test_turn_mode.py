"""The end-of-turn mode follows what the STT server says of its model."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.interruptions.turn_mode import (
    SttModel,
    choose_turn_mode,
    fetch_stt_model,
    flush_frames,
    parse_build_info,
)
from harness.ports import free_port

OURS_WITH_HEADS = {"name": "kyutai-inference", "stt": {"delay_s": 0.5, "pause_heads": True}}
OURS_WITHOUT_HEADS = {"name": "kyutai-inference", "stt": {"delay_s": 2.5, "pause_heads": False}}
KYUTAI_RUST = {"build_timestamp": "x", "git_describe": "y"}  # another shape, says nothing


def test_flush_covers_the_model_delay() -> None:
    assert flush_frames(0.5) == 8  # the plugin's default, for stt-1b-en_fr
    assert flush_frames(2.5) == 33  # stt-2.6b-en: 32 frames of delay + the one in progress
    assert flush_frames(2.5) * 0.08 > 2.5


def test_a_model_with_pause_heads_keeps_the_configured_mode() -> None:
    model = parse_build_info(OURS_WITH_HEADS)
    assert choose_turn_mode("stt", model).turn_detection == "stt"
    assert choose_turn_mode("vad", model).turn_detection == "vad"
    assert choose_turn_mode("stt", model).flush_frames == 8


def test_a_model_without_pause_heads_gets_vad_turns_and_a_long_flush() -> None:
    mode = choose_turn_mode("stt", parse_build_info(OURS_WITHOUT_HEADS, source="http://gpu"))
    assert mode.turn_detection == "vad"
    assert mode.flush_frames == 33
    assert mode.flush_timeout_s > 2.5
    assert "without pause heads" in mode.note and "http://gpu" in mode.note


def test_a_server_that_does_not_say_is_taken_at_the_configured_mode() -> None:
    model = parse_build_info(KYUTAI_RUST)
    assert model == SttModel()
    mode = choose_turn_mode("stt", model)
    assert mode.turn_detection == "stt" and mode.flush_frames == 8
    assert "does not say" in mode.note
    for junk in (None, [], "x", {"stt": "x"}, {"stt": {"pause_heads": "no", "delay_s": -1}}):
        assert parse_build_info(junk) == SttModel()


@pytest.fixture
def build_info_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(OURS_WITHOUT_HEADS).encode()
            self.send_response(200 if self.path == "/api/build_info" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}/api/asr-streaming"
    finally:
        server.shutdown()
        server.server_close()


def test_the_first_server_that_answers_is_asked(build_info_server: str) -> None:
    down = f"ws://127.0.0.1:{free_port()}"
    model = fetch_stt_model([down, build_info_server], timeout_s=1.0)
    assert model is not None and model.pause_heads is False and model.delay_s == 2.5
    assert fetch_stt_model([down], timeout_s=1.0) is None
