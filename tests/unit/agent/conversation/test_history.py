"""What the LLM sees of the conversation: cleaned history within a token budget."""

from __future__ import annotations

from agent.conversation import history


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
