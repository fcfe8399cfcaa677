"""Fixtures for end-to-end tests: a real livekit-server, the worker, a stub LLM, participants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harness.inference_server import InferenceServer, start_inference_server
from harness.join_token import make_token
from harness.livekit_server import ROOT, LiveKitServer, start_livekit_server
from harness.participant import TestParticipant
from harness.stub_llm import StubLLM
from harness.worker import tiny_stack_env


@pytest.fixture(scope="session")
def livekit_server(artifacts_dir: Path) -> Iterator[LiveKitServer]:
    server = start_livekit_server(artifacts_dir / "logs")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stub_llm_server() -> Iterator[StubLLM]:
    with StubLLM() as stub:
        yield stub


@pytest.fixture
def stub_llm(stub_llm_server: StubLLM) -> StubLLM:
    stub_llm_server.reset()
    return stub_llm_server


@pytest.fixture(scope="session")
def inference_server(artifacts_dir: Path) -> Iterator[InferenceServer]:
    """The real inference server with the tiny models (generated once into .cache/)."""
    with start_inference_server(
        ROOT / ".cache" / "kyutai-tiny",
        batch_size=8,
        # A conversation holds up to two TTS slots (the pre-connected socket and the one
        # speaking); tests run up to 6-8 rooms at once.
        tts_batch_size=16,
        log_dir=artifacts_dir / "logs",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def agent_env(inference_server: InferenceServer, stub_llm_server: StubLLM) -> dict[str, str]:
    """Environment for a worker wired to the tiny inference server and the stub LLM."""
    return tiny_stack_env(inference_server.url, inference_server.api_key, stub_llm_server.base_url)


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
