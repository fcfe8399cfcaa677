"""The agent's side of dispatch: who else is in the room."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from livekit import rtc

from agent.ops.dispatch import has_person, other_agent

AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD


def room(*participants: tuple[str, Any, dict[str, str]]) -> Any:
    return SimpleNamespace(
        remote_participants={
            identity: SimpleNamespace(identity=identity, kind=kind, attributes=attrs)
            for identity, kind, attrs in participants
        }
    )


def test_another_agent_of_ours_is_found() -> None:
    r = room(("user", STANDARD, {}), ("agent-AJ_1", AGENT, {"lk.agent.name": "kyutai-agent"}))
    assert other_agent(r, "kyutai-agent") == "agent-AJ_1"


def test_other_agents_and_people_are_not_ours() -> None:
    r = room(("user", STANDARD, {}), ("agent-AJ_2", AGENT, {"lk.agent.name": "recorder"}))
    assert other_agent(r, "kyutai-agent") is None
    assert has_person(r)


def test_a_room_with_only_agents_has_no_person() -> None:
    assert not has_person(room(("agent-AJ_2", AGENT, {"lk.agent.name": "recorder"})))
    assert not has_person(room(("egress", rtc.ParticipantKind.PARTICIPANT_KIND_EGRESS, {})))
    assert not has_person(room())
    assert has_person(room(("caller", rtc.ParticipantKind.PARTICIPANT_KIND_SIP, {})))
