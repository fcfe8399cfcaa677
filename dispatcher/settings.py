"""The dispatcher's configuration: the LiveKit server it acts on, the agent it dispatches, and
how it runs the line of rooms waiting for an agent.

The same variable names as the worker's, so one `.env` serves both processes.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AGENT_NAME = "kyutai-agent"


class DispatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    livekit_url: str = Field(
        "ws://127.0.0.1:7880",
        description="LiveKit server whose webhooks arrive here (ws(s):// or http(s)://)",
        validation_alias="LIVEKIT_URL",
    )
    livekit_api_key: str = Field(
        ...,
        description="LiveKit API key: verifies webhooks and signs dispatch requests",
        validation_alias="LIVEKIT_API_KEY",
    )
    livekit_api_secret: SecretStr = Field(
        ..., description="LiveKit API secret", validation_alias="LIVEKIT_API_SECRET"
    )
    agent_name: str = Field(
        DEFAULT_AGENT_NAME,
        description="the agent dispatched again (the worker's AGENT_NAME)",
        validation_alias=AliasChoices("LIVEKIT_AGENT_NAME", "AGENT_NAME"),
    )
    poll_s: float = Field(
        2.0,
        gt=0,
        description="seconds between two looks at the rooms (a webhook triggers one at once)",
        validation_alias="DISPATCHER_POLL_S",
    )
    accept_s: float = Field(
        1.0,
        gt=0,
        description="a dispatch no worker took within this is made again",
        validation_alias="DISPATCHER_ACCEPT_S",
    )
    connect_s: float = Field(
        15.0,
        gt=0,
        description="a worker that took a room has this long for its agent to join",
        validation_alias="DISPATCHER_CONNECT_S",
    )
    give_up_s: float = Field(
        300.0,
        gt=0,
        description="a room waiting this long is told no agent will come",
        validation_alias="DISPATCHER_GIVE_UP_S",
    )
    characters_file: Path = Field(
        Path("characters.yaml"),
        description="the characters catalogue (the worker's): rooms wanting Moshi wait apart",
        validation_alias="KYUTAI_CHARACTERS_FILE",
    )

    @field_validator("livekit_api_key", "agent_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()
