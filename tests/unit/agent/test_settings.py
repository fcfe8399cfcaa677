"""Worker settings: Unmute's names keep working, unsupported ones say so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.settings import AgentSettings

ROOT = Path(__file__).resolve().parents[3]


def test_unmute_names_are_read() -> None:
    settings = AgentSettings(
        KYUTAI_STT_URL="ws://a:1,ws://b:2",
        KYUTAI_TTS_URL="ws://c:3",
        KYUTAI_MOSHI_URL=" ws://m:1, ws://m:2 ,",
        KYUTAI_LLM_URL="http://llm:8000/v1",
        KYUTAI_LLM_MODEL="m",
        KYUTAI_RECORDINGS_DIR="/tmp/rec",
    )
    assert settings.stt_urls == ["ws://a:1", "ws://b:2"]
    assert settings.tts_urls == ["ws://c:3"]
    assert settings.models.moshi_urls == ["ws://m:1", "ws://m:2"]
    assert settings.llm_model == "m"
    assert settings.recordings_dir == Path("/tmp/rec")
    assert settings.unsupported_settings() == []


@pytest.mark.parametrize("value", ["", None])
def test_voice_cloning_unset_is_quiet(value: str | None) -> None:
    assert AgentSettings(KYUTAI_VOICE_CLONING_URL=value).unsupported_settings() == []


def test_voice_cloning_url_is_accepted_with_a_warning() -> None:
    warnings = AgentSettings(KYUTAI_VOICE_CLONING_URL="http://clone:8092").unsupported_settings()
    assert len(warnings) == 1 and "voice cloning is not supported" in warnings[0]


def test_worker_prints_the_warning_at_start() -> None:
    # `--help` needs no LiveKit server; the warning comes before any mode runs.
    env = {"KYUTAI_VOICE_CLONING_URL": "http://clone:8092", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "agent: warning: KYUTAI_VOICE_CLONING_URL is set" in proc.stderr, proc.stderr[-2000:]


def test_model_outage_budget_becomes_reconnect_attempts() -> None:
    from agent.session import RECONNECT_INTERVAL_S, outage_options

    sixty = outage_options(60.0)
    assert sixty.max_retry * sixty.retry_interval >= 60.0
    assert sixty.retry_interval == RECONNECT_INTERVAL_S
    assert outage_options(0.0).max_retry == 0
    assert outage_options(61.0).max_retry == 31


def test_a_closing_session_waits_for_the_last_words_as_long_as_the_stt_needs() -> None:
    from agent.interruptions.turn_mode import SttModel, choose_turn_mode
    from agent.session import close_transcript_s

    fast = choose_turn_mode("stt", SttModel(pause_heads=True, delay_s=0.5))
    assert close_transcript_s(fast) < 1.0  # 8 frames + margin
    slow = choose_turn_mode("stt", SttModel(pause_heads=False, delay_s=2.5))
    assert close_transcript_s(slow) == 2.0  # never longer than LiveKit's own bound
