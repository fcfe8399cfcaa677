"""The dependency health view: probes of the Kyutai servers and the LLM."""

from __future__ import annotations

from agent.ops.health import check
from agent.ops.urls import http_endpoint
from agent.settings import AgentSettings
from harness.ports import free_port


def test_build_info_endpoint() -> None:
    assert http_endpoint("ws://gpu:8089", "/api/build_info") == "http://gpu:8089/api/build_info"
    assert http_endpoint("wss://x.example/api/asr-streaming", "/api/build_info") == (
        "https://x.example/api/build_info"
    )


async def test_health_reports_unreachable_services() -> None:
    closed = free_port()
    settings = AgentSettings(
        KYUTAI_STT_URL=f"ws://127.0.0.1:{closed}",
        KYUTAI_TTS_URL=f"ws://127.0.0.1:{closed}",
        KYUTAI_LLM_URL=f"http://127.0.0.1:{closed}",
    )
    assert await check(settings) == {"stt_up": False, "tts_up": False, "llm_up": False, "ok": False}
