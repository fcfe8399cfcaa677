"""The LLM server: its base URL and the model to use."""

from __future__ import annotations

import pytest

from agent.llm_client import LLMConfigError, normalize_base_url, pick_model


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
