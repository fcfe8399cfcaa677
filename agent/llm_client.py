"""The LLM: any OpenAI-compatible server, its base URL, its model, and sane timeouts."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx2 as httpx
from livekit.agents import NOT_GIVEN, NotGivenOr
from livekit.agents.llm import ChatContext, ChatMessage
from livekit.agents.utils import is_given
from livekit.plugins import openai

from agent.log import logger


class LLMConfigError(RuntimeError):
    """The LLM configuration can't work; the message says what to change."""


def normalize_base_url(url: str) -> str:
    """Accept a server root (`http://host:8000`) or its OpenAI base (`.../v1`)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise LLMConfigError(f"KYUTAI_LLM_URL must be an http(s) URL, got {url!r}")
    return url if url.endswith("/v1") else f"{url}/v1"


def pick_model(available: list[str], configured: str | None) -> str:
    """The configured model, or the only one the server lists (as Unmute does)."""
    if configured:
        return configured
    if len(available) == 1:
        return available[0]
    if not available:
        raise LLMConfigError("the LLM server lists no model: set KYUTAI_LLM_MODEL")
    raise LLMConfigError(
        "the LLM server lists several models, set KYUTAI_LLM_MODEL to one of: "
        + ", ".join(sorted(available))
    )


async def list_models(base_url: str, api_key: str | None, timeout_s: float = 5.0) -> list[str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.get(f"{base_url}/models", headers=headers) as resp,
        ):
            if resp.status != 200:
                raise LLMConfigError(f"GET {base_url}/models answered HTTP {resp.status}")
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise LLMConfigError(f"the LLM server at {base_url} is unreachable: {exc!r}") from exc
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise LLMConfigError(f"GET {base_url}/models did not return an OpenAI model list")
    return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]


async def resolve_model(base_url: str, api_key: str | None, configured: str | None) -> str:
    if configured:
        return configured
    model = pick_model(await list_models(base_url, api_key), None)
    logger.info("using the LLM server's only model %s", model)
    return model


def temperature_for(chat_ctx: ChatContext, *, first: float, then: float) -> float:
    """Unmute's schedule: a lively first message (the greeting), steadier replies after it."""
    spoke = any(
        isinstance(item, ChatMessage) and item.role == "assistant" for item in chat_ctx.items
    )
    return then if spoke else first


class ConversationLLM(openai.LLM):
    """`openai.LLM` whose sampling temperature follows `temperature_for` on every request."""

    def __init__(self, *, first_temperature: float, temperature: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_temperature = first_temperature
        self.temperature = temperature

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
        **kwargs: Any,
    ) -> openai.llm.LLMStream:
        temperature = temperature_for(chat_ctx, first=self.first_temperature, then=self.temperature)
        extra = {"temperature": temperature, **(extra_kwargs if is_given(extra_kwargs) else {})}
        return super().chat(chat_ctx=chat_ctx, extra_kwargs=extra, **kwargs)


def build_llm(
    *,
    base_url: str,
    model: str,
    api_key: str | None,
    timeout_s: float,
    temperature: float = 0.3,
    first_temperature: float = 0.7,
) -> ConversationLLM:
    """An `openai.LLM` for a possibly local server.

    The plugin's default 5 s read timeout is too short for a local model prefilling a long
    prompt on a busy GPU; a fixed connect timeout keeps an unreachable server from hanging us.
    """
    return ConversationLLM(
        first_temperature=first_temperature,
        temperature=temperature,
        model=model,
        base_url=base_url,
        # Local servers ignore the key, but the openai client insists on having one.
        api_key=api_key or "no-key",
        timeout=httpx.Timeout(connect=5.0, read=timeout_s, write=10.0, pool=5.0),
        max_retries=0,
    )
