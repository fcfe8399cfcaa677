"""The dispatcher's configuration: the LiveKit server it acts on and the agent it dispatches.

The same variable names as the worker's, so one `.env` serves both processes.
"""

from __future__ import annotations

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

    @field_validator("livekit_api_key", "agent_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()
