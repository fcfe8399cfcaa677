"""The worker's configuration: one settings object, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AGENT_NAME = "kyutai-agent"
# LiveKit's documented development credentials (livekit-server --dev); refused outside dev mode.
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class InterruptionSettings:
    """When the agent's turn ends and when it yields to the user."""

    turn_detection: Literal["stt", "vad"]
    vad_min_silence_s: float
    min_endpointing_delay_s: float
    min_interruption_s: float
    min_interruption_words: int
    backchannel_max_s: float
    fast_barge_in: bool
    fast_barge_in_margin_db: float
    false_interruption_timeout_s: float


@dataclass(frozen=True)
class ModelSettings:
    """Where the models are: Kyutai STT/TTS servers and the OpenAI-compatible LLM."""

    stt_urls: list[str]
    tts_urls: list[str]
    moshi_urls: list[str]
    kyutai_api_key: str
    llm_url: str
    llm_model: str | None
    llm_api_key: str | None
    llm_timeout_s: float
    model_outage_s: float
    llm_first_temperature: float
    llm_temperature: float


class AgentSettings(BaseSettings):
    """Every variable the worker reads, flat, under the documented names (Unmute's included);
    the views below group them for the code that uses them."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    livekit_url: str = Field(
        "ws://127.0.0.1:7880",
        description="LiveKit server the worker registers with",
        validation_alias="LIVEKIT_URL",
    )
    livekit_api_key: str | None = Field(
        None,
        description="LiveKit API key (devkey is accepted in dev mode only)",
        validation_alias="LIVEKIT_API_KEY",
    )
    livekit_api_secret: SecretStr | None = Field(
        None,
        description="LiveKit API secret (>= 32 characters outside dev mode)",
        validation_alias="LIVEKIT_API_SECRET",
    )

    stt_url: str = Field(
        "ws://127.0.0.1:8089",
        description="Kyutai STT server(s), comma-separated: tried in order when one is full",
        validation_alias="KYUTAI_STT_URL",
    )
    tts_url: str = Field(
        "ws://127.0.0.1:8089",
        description="Kyutai TTS server(s), comma-separated: tried in order when one is full",
        validation_alias="KYUTAI_TTS_URL",
    )
    moshi_url: str = Field(
        "ws://127.0.0.1:8089",
        description="Moshi server(s) for duplex characters, comma-separated: our inference "
        "server with `--engines` including moshi, or Kyutai's moshi.server",
        validation_alias="KYUTAI_MOSHI_URL",
    )
    kyutai_api_key: SecretStr = Field(
        SecretStr("public_token"),
        description="auth id sent to the Kyutai servers (`kyutai-api-key` header)",
        validation_alias="KYUTAI_API_KEY",
    )
    llm_url: str = Field(
        "http://127.0.0.1:8000",
        description="OpenAI-compatible LLM server (its root or its /v1 URL)",
        validation_alias="KYUTAI_LLM_URL",
    )
    llm_model: str | None = Field(
        None,
        description="LLM model name; unset = the only model `GET /v1/models` lists",
        validation_alias="KYUTAI_LLM_MODEL",
    )
    llm_api_key: SecretStr | None = Field(
        None,
        description="API key for the LLM server, if it needs one",
        validation_alias="KYUTAI_LLM_API_KEY",
    )

    agent_name: str = Field(
        DEFAULT_AGENT_NAME,
        description="name the worker registers under for explicit dispatch",
        validation_alias=AliasChoices("LIVEKIT_AGENT_NAME", "AGENT_NAME"),
    )
    http_host: str = Field(
        "0.0.0.0",
        description="address of the worker's health endpoint",
        validation_alias="AGENT_HTTP_HOST",
    )
    http_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="port of the worker's health endpoint (`GET /`)",
        validation_alias="AGENT_HTTP_PORT",
    )
    prometheus_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="port of the worker's Prometheus metrics; unset = off",
        validation_alias="AGENT_PROMETHEUS_PORT",
    )
    num_idle_processes: int = Field(
        1,
        ge=0,
        le=64,
        description="warm job processes kept ready for new rooms",
        validation_alias="AGENT_NUM_IDLE_PROCESSES",
    )
    max_jobs: int = Field(
        16,
        ge=1,
        description="conversations one worker runs at once (see agent/ops/capacity.py)",
        validation_alias="AGENT_MAX_JOBS",
    )
    load_threshold: float = Field(
        1.0,
        gt=0,
        le=1,
        description="fraction of AGENT_MAX_JOBS at which the worker reports itself full",
        validation_alias="AGENT_LOAD_THRESHOLD",
    )
    empty_room_s: float = Field(
        20.0,
        gt=0,
        description="seconds an agent dispatched into an empty room waits for a person "
        "(holding no model slot) before it leaves",
        validation_alias="AGENT_EMPTY_ROOM_S",
    )
    drain_timeout_s: int = Field(
        600,
        ge=0,
        description="seconds a SIGTERM'd worker lets running conversations finish",
        validation_alias="AGENT_DRAIN_TIMEOUT_S",
    )
    capacity_from_inference: bool = Field(
        True,
        description="report the worker full when its inference servers have no free STT or "
        "TTS slot (read from their /metrics), not only at AGENT_MAX_JOBS; decline rooms that "
        "want Moshi while no Moshi slot is free",
        validation_alias="AGENT_CAPACITY_FROM_INFERENCE",
    )
    capacity_metrics_url: str | None = Field(
        None,
        description="where to read the slot gauges, comma-separated; unset = the /metrics of "
        "KYUTAI_STT_URL, KYUTAI_TTS_URL and (with a duplex character) KYUTAI_MOSHI_URL",
        validation_alias="AGENT_CAPACITY_METRICS_URL",
    )
    capacity_poll_interval_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="seconds between two reads of the inference servers' slot gauges",
        validation_alias="AGENT_CAPACITY_POLL_S",
    )
    status_port: int | None = Field(
        8082,
        ge=0,
        le=65535,
        description="port of the dependency health view (`GET /health`); empty = off",
        validation_alias="AGENT_STATUS_PORT",
    )
    turn_detection: Literal["stt", "vad"] = Field(
        "stt",
        description="end of turn from the Kyutai pause heads (`stt`) or from Silero VAD "
        "silence (`vad`); an STT model without pause heads gets `vad` (its build_info says so)",
        validation_alias="KYUTAI_TURN_DETECTION",
    )
    stt_flush: Literal["voice", "full"] = Field(
        "voice",
        description="how far the STT is flushed when a turn ends: past the last voiced frame "
        "(`voice`, about -50 dBFS), or through the whole pause and the model delay (`full`, "
        "as Unmute does; a noisy microphone gets that anyway)",
        validation_alias="KYUTAI_STT_FLUSH",
    )
    vad_min_silence_s: float = Field(
        0.55,
        gt=0,
        le=5,
        description="silence that ends speech for Silero VAD (ends the turn when "
        "KYUTAI_TURN_DETECTION=vad, or when the STT model has no pause heads)",
        validation_alias="KYUTAI_VAD_MIN_SILENCE_S",
    )
    min_endpointing_delay_s: float = Field(
        0.1,
        ge=0,
        le=5,
        description="extra wait after an end of turn before replying",
        validation_alias="KYUTAI_MIN_ENDPOINTING_DELAY_S",
    )
    min_interruption_s: float = Field(
        0.05,
        ge=0,
        description="user speech that pauses the agent (it resumes if the turn was a backchannel)",
        validation_alias="KYUTAI_MIN_INTERRUPTION_S",
    )
    min_interruption_words: int = Field(
        2,
        ge=0,
        description='fewer words than this ("mm-hm") only pause the agent, which then resumes',
        validation_alias="KYUTAI_MIN_INTERRUPTION_WORDS",
    )
    backchannel_max_s: float = Field(
        0.6,
        ge=0,
        description="user speech over the agent shorter than this is a backchannel",
        validation_alias="KYUTAI_BACKCHANNEL_MAX_S",
    )
    fast_barge_in: bool = Field(
        True,
        description="pause the agent on the first 20 ms of loud user audio instead of waiting "
        "for the VAD (~0.15 s later); lifted within 0.4 s unless the VAD hears speech",
        validation_alias="KYUTAI_FAST_BARGE_IN",
    )
    fast_barge_in_margin_db: float = Field(
        15.0,
        ge=3,
        le=60,
        description="how far above the user's noise floor audio must rise to pause the agent "
        "(raise it for noisy rooms or weak echo cancellation)",
        validation_alias="KYUTAI_FAST_BARGE_IN_MARGIN_DB",
    )
    false_interruption_timeout_s: float = Field(
        1.0,
        gt=0,
        description="silence after a backchannel before the paused agent resumes",
        validation_alias="KYUTAI_FALSE_INTERRUPTION_TIMEOUT_S",
    )
    llm_timeout_s: float = Field(
        15.0,
        gt=0,
        description="seconds without LLM output before the agent apologises",
        validation_alias="KYUTAI_LLM_TIMEOUT_S",
    )
    model_outage_s: float = Field(
        60.0,
        ge=0,
        description="seconds a conversation waits for an unreachable Kyutai STT/TTS server "
        "(a restart) before it gives up and the agent leaves",
        validation_alias="KYUTAI_MODEL_OUTAGE_S",
    )
    llm_first_temperature: float = Field(
        0.7,
        ge=0,
        le=2,
        description="LLM sampling temperature for the agent's first message (the greeting)",
        validation_alias="KYUTAI_LLM_FIRST_TEMPERATURE",
    )
    llm_temperature: float = Field(
        0.3,
        ge=0,
        le=2,
        description="LLM sampling temperature for every later reply",
        validation_alias="KYUTAI_LLM_TEMPERATURE",
    )
    context_tokens: int = Field(
        6000,
        ge=500,
        description="history budget (estimated tokens) sent to the LLM; oldest turns dropped",
        validation_alias="KYUTAI_CONTEXT_TOKENS",
    )
    silence_timeout_s: float = Field(
        7.0,
        gt=0,
        description="user silence before the agent nudges",
        validation_alias="KYUTAI_SILENCE_TIMEOUT_S",
    )
    max_silent_turns: int = Field(
        3,
        ge=1,
        description="nudges without an answer before the agent says goodbye and leaves",
        validation_alias="KYUTAI_MAX_SILENT_TURNS",
    )
    characters_file: Path = Field(
        Path("characters.yaml"),
        description="the characters catalogue",
        validation_alias="KYUTAI_CHARACTERS_FILE",
    )
    recordings_dir: Path | None = Field(
        None,
        description="write per-session JSONL transcripts here (text only); unset = off",
        validation_alias="KYUTAI_RECORDINGS_DIR",
    )
    voice_cloning_url: str | None = Field(
        None,
        description="Unmute's voice-cloning service; not supported (that service is private): "
        "set, the worker says so at start and uses the characters' voices",
        validation_alias="KYUTAI_VOICE_CLONING_URL",
    )
    dev_mode: bool = Field(
        False,
        description="accept LiveKit's development keys outside `python -m agent dev`",
        validation_alias="KYUTAI_DEV_MODE",
    )

    @property
    def interruptions(self) -> InterruptionSettings:
        return InterruptionSettings(
            turn_detection=self.turn_detection,
            vad_min_silence_s=self.vad_min_silence_s,
            min_endpointing_delay_s=self.min_endpointing_delay_s,
            min_interruption_s=self.min_interruption_s,
            min_interruption_words=self.min_interruption_words,
            backchannel_max_s=self.backchannel_max_s,
            fast_barge_in=self.fast_barge_in,
            fast_barge_in_margin_db=self.fast_barge_in_margin_db,
            false_interruption_timeout_s=self.false_interruption_timeout_s,
        )

    @property
    def models(self) -> ModelSettings:
        return ModelSettings(
            stt_urls=self.stt_urls,
            tts_urls=self.tts_urls,
            moshi_urls=self.moshi_urls,
            kyutai_api_key=self.kyutai_api_key.get_secret_value(),
            llm_url=self.llm_url,
            llm_model=self.llm_model,
            llm_api_key=self.llm_api_key.get_secret_value() if self.llm_api_key else None,
            llm_timeout_s=self.llm_timeout_s,
            model_outage_s=self.model_outage_s,
            llm_first_temperature=self.llm_first_temperature,
            llm_temperature=self.llm_temperature,
        )

    @property
    def stt_urls(self) -> list[str]:
        return [u.strip() for u in self.stt_url.split(",") if u.strip()]

    @property
    def tts_urls(self) -> list[str]:
        return [u.strip() for u in self.tts_url.split(",") if u.strip()]

    @property
    def moshi_urls(self) -> list[str]:
        return [u.strip() for u in self.moshi_url.split(",") if u.strip()]

    @field_validator(
        "prometheus_port",
        "status_port",
        "recordings_dir",
        "capacity_metrics_url",
        "voice_cloning_url",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("agent_name")
    @classmethod
    def _agent_name_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty: the worker only accepts explicit dispatch")
        return value

    def unsupported_settings(self) -> list[str]:
        """Warnings for Unmute settings that are accepted but do nothing here."""
        if self.voice_cloning_url:
            return [
                "KYUTAI_VOICE_CLONING_URL is set but voice cloning is not supported (Unmute's "
                "cloning service is private); the characters' voices from characters.yaml are used"
            ]
        return []

    def credential_problem(self, *, devmode: bool) -> str | None:
        """Why the LiveKit credentials can't be used, or None when they are fine."""
        if not self.livekit_api_key or self.livekit_api_secret is None:
            return "LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set"
        secret = self.livekit_api_secret.get_secret_value()
        if devmode or self.dev_mode:
            return None
        if self.livekit_api_key == DEV_API_KEY or secret == DEV_API_SECRET:
            return (
                "the LiveKit development keys (devkey/secret) are only accepted in dev mode "
                "(`python -m agent dev`, `lk agent dev` or KYUTAI_DEV_MODE=1)"
            )
        if len(secret) < MIN_SECRET_LENGTH:
            return f"LIVEKIT_API_SECRET must be at least {MIN_SECRET_LENGTH} characters"
        return None
