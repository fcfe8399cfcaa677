"""Settings of the token service: one pydantic-settings class, read once at startup.

Every field maps to the environment variable of the same name (case-insensitive), e.g.
``livekit_api_secret`` ← ``LIVEKIT_API_SECRET``. A ``.env`` file in the working directory is read
too. ``check_settings`` turns a settings object into the list of problems that must stop the
service, so ``python -m tokens serve`` can print them and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The keys livekit-server --dev accepts: anyone can mint tokens for a server still using them.
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"
# livekit-server itself refuses shorter secrets outside dev mode.
MIN_SECRET_LENGTH = 32
# Server-to-server keys shorter than this are guessable; refused outside dev mode.
MIN_API_KEY_LENGTH = 16


def _split_csv(value: object) -> object:
    """Accept ``a,b , c`` from the environment as well as a real list from Python."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    livekit_url: str = Field(
        default="ws://localhost:7880",
        description="LiveKit server URL handed to browsers (wss://… in production).",
    )
    livekit_api_key: str = Field(default="", description="LiveKit API key (the JWT issuer).")
    livekit_api_secret: SecretStr = Field(
        default=SecretStr(""),
        description="LiveKit API secret; signs tokens and never leaves the service.",
    )
    livekit_agent_name: str = Field(
        default="kyutai-agent", description="Agent dispatched into every room a token opens."
    )
    token_api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated server-to-server keys accepted as `Authorization: Bearer`.",
    )
    token_ttl_s: int = Field(
        default=600, ge=10, le=86_400, description="Lifetime of an issued token."
    )
    token_demo_mode: bool = Field(default=False, description="Issue tokens without an API key.")
    token_dev_mode: bool = Field(
        default=False, description="Accept dev LiveKit keys and short secrets."
    )
    token_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated browser origins allowed to call the API (`*` = any).",
    )
    token_rate_limit_per_min: float = Field(
        default=10.0, gt=0, description="Demo mode: tokens per minute per client IP (refill rate)."
    )
    token_rate_limit_burst: int = Field(
        default=5, ge=1, description="Demo mode: tokens a client IP may take at once (bucket size)."
    )
    token_rate_limit_max_clients: int = Field(
        default=10_000, ge=1, description="Demo mode: client IPs remembered by the rate limiter."
    )
    token_forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-For (the client IP used for rate limiting).",
    )
    token_dispatcher_url: str | None = Field(
        default=None,
        description="The dispatcher (`python -m dispatcher`), asked how many rooms wait for an "
        "agent; unset = no line limit.",
    )
    token_max_line: int | None = Field(
        default=None,
        ge=0,
        description="Refuse new conversations (503 + Retry-After) while this many rooms wait.",
    )
    token_line_retry_after_s: int = Field(
        default=30, ge=1, description="The Retry-After of that refusal, in seconds."
    )
    kyutai_characters_file: Path = Field(
        default=Path("characters.yaml"),
        description="YAML catalogue of characters offered to pages.",
    )

    @field_validator("token_allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        origins = _split_csv(value)
        if isinstance(origins, list):
            # Origins never carry a trailing slash; tolerate one in configuration.
            return [str(o).rstrip("/") for o in origins]
        return origins

    def api_keys(self) -> tuple[str, ...]:
        """The configured server-to-server keys (kept in a SecretStr so reprs never show them)."""
        parsed = _split_csv(self.token_api_keys.get_secret_value())
        assert isinstance(parsed, list)
        return tuple(parsed)

    def effective_livekit_credentials(self) -> tuple[str, str]:
        """The key and secret used to sign tokens; dev mode falls back to livekit-server --dev's."""
        key = self.livekit_api_key
        secret = self.livekit_api_secret.get_secret_value()
        if self.token_dev_mode and not key and not secret:
            return DEV_API_KEY, DEV_API_SECRET
        return key, secret


def check_settings(settings: Settings) -> list[str]:
    """Problems that must stop the service; each is a sentence saying what to set."""
    problems: list[str] = []
    key, secret = settings.effective_livekit_credentials()
    dev = settings.token_dev_mode

    if not key:
        problems.append("LIVEKIT_API_KEY is not set.")
    if not secret:
        problems.append("LIVEKIT_API_SECRET is not set.")
    if key and secret and not dev:
        if key == DEV_API_KEY or secret == DEV_API_SECRET:
            problems.append(
                "LIVEKIT_API_KEY/LIVEKIT_API_SECRET are livekit-server's dev keys "
                "(devkey/secret): anyone could mint tokens. Use real keys, or set "
                "TOKEN_DEV_MODE=1 for local development."
            )
        elif len(secret) < MIN_SECRET_LENGTH:
            problems.append(
                f"LIVEKIT_API_SECRET is shorter than {MIN_SECRET_LENGTH} characters "
                "(livekit-server refuses it too outside dev mode). Use a longer secret, or set "
                "TOKEN_DEV_MODE=1 for local development."
            )

    scheme = urlsplit(settings.livekit_url).scheme
    if scheme not in ("ws", "wss", "http", "https"):
        problems.append(
            f"LIVEKIT_URL must be a ws://, wss://, http:// or https:// URL "
            f"(got {settings.livekit_url!r})."
        )
    if not settings.livekit_agent_name.strip():
        problems.append("LIVEKIT_AGENT_NAME must not be empty.")

    api_keys = settings.api_keys()
    if not api_keys and not settings.token_demo_mode:
        problems.append(
            "No way to obtain a token: set TOKEN_API_KEYS (comma-separated server-to-server "
            "keys) and/or TOKEN_DEMO_MODE=1 (public demo with a per-IP rate limit)."
        )
    if not dev and any(len(k) < MIN_API_KEY_LENGTH for k in api_keys):
        problems.append(
            f"Every key in TOKEN_API_KEYS must have at least {MIN_API_KEY_LENGTH} characters "
            "(or set TOKEN_DEV_MODE=1 for local development)."
        )
    if "*" in settings.token_allowed_origins and settings.token_demo_mode and not dev:
        problems.append(
            "TOKEN_ALLOWED_ORIGINS=* with TOKEN_DEMO_MODE=1 lets any website mint demo tokens; "
            "list the origins explicitly (or set TOKEN_DEV_MODE=1)."
        )
    return problems
