"""When the failover service dispatches a new agent: only for an abrupt agent departure."""

from __future__ import annotations

from livekit import api
from livekit.protocol import models

from dispatcher.failover import agent_lost, needs_agent

AGENT = models.ParticipantInfo.Kind.AGENT
STANDARD = models.ParticipantInfo.Kind.STANDARD


def left(kind: int, reason: int, name: str = "kyutai-agent") -> api.WebhookEvent:
    return api.WebhookEvent(
        event="participant_left",
        room=models.Room(name="r"),
        participant=models.ParticipantInfo(
            identity="agent-x",
            kind=kind,
            disconnect_reason=reason,
            attributes={"lk.agent.name": name},
        ),
    )


def test_an_agent_that_vanished_is_lost() -> None:
    for reason in (
        models.DisconnectReason.SIGNAL_CLOSE,
        models.DisconnectReason.STATE_MISMATCH,
        models.DisconnectReason.CONNECTION_TIMEOUT,
        models.DisconnectReason.UNKNOWN_REASON,
    ):
        assert agent_lost(left(AGENT, reason), "kyutai-agent")


def test_clean_departures_and_others_are_not() -> None:
    assert not agent_lost(left(AGENT, models.DisconnectReason.CLIENT_INITIATED), "kyutai-agent")
    assert not agent_lost(left(AGENT, models.DisconnectReason.ROOM_DELETED), "kyutai-agent")
    assert not agent_lost(left(STANDARD, models.DisconnectReason.SIGNAL_CLOSE), "kyutai-agent")
    assert not agent_lost(
        left(AGENT, models.DisconnectReason.SIGNAL_CLOSE, "other"), "kyutai-agent"
    )
    event = left(AGENT, models.DisconnectReason.SIGNAL_CLOSE)
    event.event = "participant_joined"
    assert not agent_lost(event, "kyutai-agent")


def test_needs_agent_only_with_a_person_and_no_agent() -> None:
    person = models.ParticipantInfo(identity="u", kind=STANDARD)
    agent = models.ParticipantInfo(
        identity="a", kind=AGENT, attributes={"lk.agent.name": "kyutai-agent"}
    )
    assert needs_agent([person], "kyutai-agent")
    assert not needs_agent([person, agent], "kyutai-agent")
    assert not needs_agent([], "kyutai-agent")
