"""DuplexTools against fakes of the session, the room and Moshi: which words raise which calls,
what reaches the room, and the hold / read out / release of a spoken result."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from livekit.agents import llm

from agent.duplex.intents import IntentWatcher
from agent.duplex.tools import DuplexTools
from catalog.characters import IntentRule

TIME = IntentRule(says=("what time is it",), tool="current_time", spoken=True)
HOWDY = IntentRule(says=("howdy",), speaker="agent", tool="look_up_definition", argument="term")


class FakeMoshi:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> str:
        self.calls.append((name, arguments))
        return f"call-{len(self.calls)}"

    async def hold(self) -> None:
        self.log.append("hold")

    async def release(self) -> None:
        self.log.append("release")


class FakeSpeech:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.done = asyncio.Event()

    def interrupt(self) -> None:
        self.log.append("interrupted")
        self.done.set()

    def __await__(self) -> Any:
        return self.done.wait().__await__()


class FakeSession:
    def __init__(self, moshi: FakeMoshi) -> None:
        self.handlers: dict[str, Callable[[Any], None]] = {}
        self.current_agent = SimpleNamespace(duplex_session=moshi)
        self.said: list[FakeSpeech] = []
        self.moshi = moshi

    def on(self, event: str, handler: Callable[[Any], None]) -> None:
        self.handlers[event] = handler

    def say(self, text: str, allow_interruptions: bool = True) -> FakeSpeech:
        self.moshi.log.append(f"say {text}")
        speech = FakeSpeech(self.moshi.log)
        self.said.append(speech)
        return speech


class FakeRoom:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.local_participant = self

    async def send_text(self, text: str, *, topic: str) -> None:
        self.sent.append((topic, text))


def setup(*rules: IntentRule) -> tuple[DuplexTools, FakeSession, FakeRoom, FakeMoshi]:
    moshi = FakeMoshi()
    session, room = FakeSession(moshi), FakeRoom()
    tools = DuplexTools(session, room, IntentWatcher(rules))  # type: ignore[arg-type]
    tools.attach()
    return tools, session, room, moshi


def executed(call_id: str, name: str, output: str) -> SimpleNamespace:
    return SimpleNamespace(
        function_calls=[llm.FunctionCall(call_id=call_id, name=name, arguments="{}")],
        function_call_outputs=[
            llm.FunctionCallOutput(call_id=call_id, name=name, output=output, is_error=False)
        ],
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_final_user_words_and_moshis_bursts_raise_their_rules() -> None:
    _tools, session, _room, moshi = setup(TIME, HOWDY)
    transcribed = session.handlers["user_input_transcribed"]
    transcribed(SimpleNamespace(is_final=False, transcript="what time is it"))  # interim
    assert moshi.calls == []
    transcribed(SimpleNamespace(is_final=True, transcript="What time is it?"))
    item = llm.ChatMessage(role="assistant", content=[" howdy text"])
    session.handlers["conversation_item_added"](SimpleNamespace(item=item))
    user_item = llm.ChatMessage(role="user", content=["howdy"])  # a user saying Moshi's cue
    session.handlers["conversation_item_added"](SimpleNamespace(item=user_item))
    assert moshi.calls == [("current_time", {}), ("look_up_definition", {"term": "text"})]


async def test_every_result_is_a_card_and_only_spoken_ones_are_read() -> None:
    _tools, session, room, moshi = setup(TIME, HOWDY)
    session.handlers["conversation_item_added"](
        SimpleNamespace(item=llm.ChatMessage(role="assistant", content=["howdy text"]))
    )
    session.handlers["function_tools_executed"](executed("call-1", "look_up_definition", "x"))
    await settle()
    assert [(t, json.loads(x)["name"]) for t, x in room.sent] == [
        ("kyutai.tool", "look_up_definition")
    ]
    assert session.said == [] and moshi.log == []


async def test_a_spoken_result_holds_moshi_is_cut_by_the_user_then_releases() -> None:
    _tools, session, room, moshi = setup(TIME)
    session.handlers["user_input_transcribed"](
        SimpleNamespace(is_final=True, transcript="what time is it")
    )
    session.handlers["function_tools_executed"](executed("call-1", "current_time", "Noon."))
    await settle()
    assert moshi.log == ["hold", "say Noon."] and len(room.sent) == 1
    session.handlers["user_state_changed"](SimpleNamespace(new_state="speaking"))
    await settle()
    assert moshi.log == ["hold", "say Noon.", "interrupted", "release"]
