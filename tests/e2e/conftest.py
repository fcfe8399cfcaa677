"""Fixtures for end-to-end tests: a real livekit-server, the worker, a stub LLM, participants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.livekit_server import LiveKitServer, start_livekit_server
from tests.support.participant import TestParticipant, make_token
from tests.support.stub_llm import StubLLM


@pytest.fixture(scope="session")
def livekit_server(artifacts_dir: Path) -> Iterator[LiveKitServer]:
    server = start_livekit_server(artifacts_dir / "logs")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stub_llm() -> Iterator[StubLLM]:
    with StubLLM() as stub:
        yield stub


@pytest.fixture
def room_name() -> str:
    return f"room-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make_participant(
    livekit_server: LiveKitServer,
) -> AsyncIterator[object]:
    """Factory: `await make_participant(room, identity, dispatch_agent=..., metadata=...)`."""
    joined: list[TestParticipant] = []

    async def factory(
        room: str,
        identity: str = "user",
        *,
        dispatch_agent: str | None = None,
        metadata: str = "",
    ) -> TestParticipant:
        token = make_token(
            livekit_server.api_key,
            livekit_server.api_secret,
            room=room,
            identity=identity,
            dispatch_agent=dispatch_agent,
            dispatch_metadata=metadata,
        )
        participant = TestParticipant(identity=identity)
        await participant.join(livekit_server.url, token)
        joined.append(participant)
        return participant

    yield factory
    for participant in joined:
        if participant.room.isconnected():
            await participant.leave()
