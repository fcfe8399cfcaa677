"""Pure pieces of the agent: health probes, history cleaning, LLM model choice, silence."""

from __future__ import annotations

import pytest

from agent.conversation import history
from agent.conversation.silence import SilencePolicy, goodbye_said
from agent.interruptions.backchannel import BackchannelFilter
from agent.llm_client import LLMConfigError, normalize_base_url, pick_model
from agent.ops.health import build_info_url, check
from agent.ops.metrics import TurnLatencyTracker
from agent.settings import AgentSettings
from harness.ports import free_port


def test_build_info_url() -> None:
    assert build_info_url("ws://gpu:8089") == "http://gpu:8089/api/build_info"
    assert build_info_url("wss://x.example/api/asr-streaming") == (
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


def test_clean_marks_cut_answers_and_merges() -> None:
    msgs = [
        history.Message("system", "prompt"),
        history.Message("assistant", "Hello there, how"),
        history.Message("user", "mm"),
        history.Message("user", "tell me more"),
        history.Message("assistant", "Well the planets are", interrupted=True),
        history.Message("assistant", history.CUT_MARK),
    ]
    out = history.clean(msgs)
    assert [m.role for m in out] == ["system", "user", "assistant", "user", "assistant"]
    assert out[1].text == "Hello."  # chat templates want a user turn first
    assert out[3].text == "mm tell me more"
    assert out[4].text == "Well the planets are —"


def test_fit_budget_keeps_prompt_and_newest_turns() -> None:
    msgs = [history.Message("system", "prompt")] + [
        history.Message("user" if i % 2 == 0 else "assistant", f"turn {i} " + "x" * 200)
        for i in range(100)
    ]
    out = history.fit_budget(msgs, max_tokens=500)
    assert out[0].text == "prompt" and out[1].text == history.OMITTED_NOTE
    assert out[2].role == "user" and out[-1].text.startswith("turn 99")
    assert sum(history.cost(m) for m in out) <= 500 + history.estimate_tokens(history.OMITTED_NOTE)


def test_model_choice() -> None:
    assert pick_model(["a"], None) == "a"
    assert pick_model(["a", "b"], "b") == "b"
    with pytest.raises(LLMConfigError, match="several models"):
        pick_model(["a", "b"], None)
    with pytest.raises(LLMConfigError, match="no model"):
        pick_model([], None)
    assert normalize_base_url("http://h:8000/") == "http://h:8000/v1"
    assert normalize_base_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    with pytest.raises(LLMConfigError):
        normalize_base_url("h:8000")


def test_silence_policy_and_goodbye() -> None:
    policy = SilencePolicy(3)
    assert [policy.on_silence(), policy.on_silence()] == ["nudge", "nudge"]
    policy.on_user_spoke()
    assert [policy.on_silence() for _ in range(3)] == ["nudge", "nudge", "goodbye"]
    assert goodbye_said("Okay, talk soon. Bye!")
    assert goodbye_said("Au revoir !")
    assert not goodbye_said("Goodbyes are hard to write about, tell me more.")


def test_backchannel_rule() -> None:
    f = BackchannelFilter(max_s=0.6, min_words=2)
    f.user_started(agent_speaking=False)
    f.user_stopped(0.3)
    assert not f.is_backchannel("ok")  # the agent was not speaking: a normal turn
    f.user_started(agent_speaking=True)
    f.user_stopped(0.3)
    assert f.is_backchannel("mm hm yeah")  # short, over the agent
    f.user_started(agent_speaking=True)
    f.user_stopped(1.5)
    assert f.is_backchannel("yeah")  # long enough but a single word
    assert not f.is_backchannel("wait tell me about the moon")
    f.consumed()
    assert not f.is_backchannel("yeah")  # the next utterance starts fresh


def test_turn_latency_tracker_joins_stages() -> None:
    tracker = TurnLatencyTracker()
    assert tracker.on_llm("s1", 0.2) is None
    assert tracker.on_eou("s1", 0.3, 0.25) is None
    turn = tracker.on_tts("s1", 0.15)
    assert turn is not None and turn.end_to_end == pytest.approx(0.65)
    assert tracker.pending == {}
