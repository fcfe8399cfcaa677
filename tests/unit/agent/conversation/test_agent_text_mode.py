"""The agent's conversation behaviour in text mode: real AgentSession, real openai client,
the stub LLM server speaking the chat-completions protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from livekit.agents import AgentSession, APIConnectOptions, llm
from livekit.agents.voice.agent_session import SessionConnectOptions

from agent.conversation import history
from agent.conversation.agent import APOLOGY, ConversationOptions, KyutaiAgent
from agent.conversation.tools import SessionState, tools_for
from agent.llm_client import build_llm
from catalog.characters import load_characters
from harness.stub_llm import Reply, StubLLM, ToolCall


@pytest.fixture(scope="module")
def stub() -> Iterator[StubLLM]:
    with StubLLM() as server:
        yield server


def make_agent(*, tools: list[str] | None = None, context_tokens: int = 6000) -> KyutaiAgent:
    return KyutaiAgent(
        instructions="You are Testy, a helpful voice agent. Keep answers short.",
        tools=tools_for(tools or []),
        options=ConversationOptions(
            language="en",
            greeting_instructions="Greet the user briefly.",
            context_tokens=context_tokens,
        ),
    )


@pytest.fixture
async def session(stub: StubLLM) -> AsyncIterator[AgentSession[SessionState]]:
    stub.reset()
    model = build_llm(base_url=stub.base_url, model="stub-llm", api_key=None, timeout_s=1.0)
    sess = AgentSession[SessionState](
        llm=model,
        userdata=SessionState(),
        conn_options=SessionConnectOptions(
            llm_conn_options=APIConnectOptions(max_retry=0, timeout=1.0)
        ),
    )
    yield sess
    await sess.aclose()
    await model.aclose()


def assistant_texts(sess: AgentSession[Any]) -> list[str]:
    return [
        item.text_content or ""
        for item in sess.history.items
        if isinstance(item, llm.ChatMessage) and item.role == "assistant"
    ]


async def test_the_agent_greets_first(session: AgentSession[SessionState], stub: StubLLM) -> None:
    stub.push(Reply(text="Hi! I'm Testy. What shall we talk about?"))
    run = await session.start(make_agent(), capture_run=True)
    await run
    first = next(
        i for i in session.history.items if isinstance(i, llm.ChatMessage) and i.role != "system"
    )
    assert first.role == "assistant"
    assert "Testy" in (first.text_content or "")
    # The greeting request carried the greeting instruction and no user message.
    roles = [m["role"] for m in stub.requests[0]["messages"]]
    assert "assistant" not in roles


async def test_greeting_is_sampled_livelier_than_the_replies(
    session: AgentSession[SessionState], stub: StubLLM
) -> None:
    # Unmute's schedule: 0.7 for the first message, 0.3 once the agent has spoken.
    stub.push(Reply(text="Hello!"))
    await (await session.start(make_agent(), capture_run=True))
    stub.push(Reply(text="Fine, thanks."), Reply(text="Sure."))
    await session.run(user_input="How are you?")
    await session.run(user_input="Tell me more.")
    assert [r.get("temperature") for r in stub.requests] == [0.7, 0.3, 0.3]


async def test_llm_error_is_an_apology_and_the_session_goes_on(
    session: AgentSession[SessionState], stub: StubLLM
) -> None:
    stub.push(Reply(text="Hello!"))
    await (await session.start(make_agent(), capture_run=True))
    stub.push(Reply(status=500))
    result = await session.run(user_input="What is the capital of France?")
    result.expect.contains_message(role="assistant")
    assert assistant_texts(session)[-1].strip() == APOLOGY["en"]
    stub.push(Reply(text="Paris is the capital of France."))
    result = await session.run(user_input="The capital of France?")
    assert "Paris" in assistant_texts(session)[-1]


async def test_llm_that_hangs_gets_an_apology(
    session: AgentSession[SessionState], stub: StubLLM
) -> None:
    stub.push(Reply(text="Hello!"))
    await (await session.start(make_agent(), capture_run=True))
    stub.push(Reply(hang=True))
    await session.run(user_input="Are you there?")
    assert assistant_texts(session)[-1].strip() == APOLOGY["en"]


async def test_reasoning_is_never_spoken(
    session: AgentSession[SessionState], stub: StubLLM
) -> None:
    stub.push(Reply(text="Hello!"))
    await (await session.start(make_agent(), capture_run=True))
    stub.push(
        Reply(
            text="<think>The user wants a number. Pick seven.</think>Seven is my pick.",
            reasoning="separate reasoning channel, ignored",
        )
    )
    await session.run(user_input="Pick a number.")
    last = assistant_texts(session)[-1]
    assert "Seven is my pick." in last
    assert "think" not in last and "Pick seven" not in last


async def test_tool_call_with_filler(session: AgentSession[SessionState], stub: StubLLM) -> None:
    stub.push(Reply(text="Hello!"))
    await (await session.start(make_agent(tools=["look_up_definition"]), capture_run=True))
    stub.push(
        Reply(tool_calls=[ToolCall("look_up_definition", {"term": "photosynthesis"})]),
        Reply(text="Photosynthesis is how plants turn light into sugar."),
    )
    result = await session.run(user_input="What is photosynthesis?")
    result.expect.contains_function_call(name="look_up_definition")
    result.expect.contains_function_call_output()
    texts = assistant_texts(session)
    assert any("check my notes" in t for t in texts), texts  # the filler was spoken
    assert "Photosynthesis" in texts[-1]


async def test_current_time_tool(session: AgentSession[SessionState], stub: StubLLM) -> None:
    stub.push(Reply(text="Hello!"))
    await (await session.start(make_agent(), capture_run=True))
    stub.push(Reply(tool_calls=[ToolCall("current_time", {})]), Reply(text="It is noon."))
    result = await session.run(user_input="What time is it?")
    result.expect.contains_function_call(name="current_time")
    output = result.expect.contains_function_call_output().event().item.output
    assert "UTC" in output


async def test_two_hundred_turns_stay_within_a_small_context(
    session: AgentSession[SessionState], stub: StubLLM
) -> None:
    budget = 1500
    stub.push(Reply(text="Hello!"))
    await (await session.start(make_agent(context_tokens=budget), capture_run=True))
    for turn in range(200):
        stub.push(Reply(text=f"Answer number {turn}: " + "blah " * 20))
        await session.run(user_input=f"Question number {turn}: " + "words " * 20)
    sent = stub.requests[-1]["messages"]
    chars = sum(len(str(m.get("content") or "")) for m in sent)
    assert chars // 4 <= budget  # what was sent fits the budget…
    assert sent[0]["role"] == "system" and "Testy" in sent[0]["content"]  # …prompt kept
    assert any(history.OMITTED_NOTE in str(m.get("content")) for m in sent)
    assert "Question number 199" in str(sent[-1]["content"])  # …and the newest turn is there
    assert len(session.history.items) > 400  # the session itself keeps everything


def test_every_character_file_tool_exists() -> None:
    characters = load_characters()
    for character in characters.characters:
        assert len(tools_for(character.tools)) >= 2
