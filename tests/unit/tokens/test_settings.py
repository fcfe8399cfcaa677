from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tokens.settings import Settings, check_settings

GOOD_SECRET = "0123456789abcdef0123456789abcdef"
GOOD_KEY = "server-key-0123456789"

ENV_NAMES = [
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVEKIT_AGENT_NAME",
    "TOKEN_API_KEYS",
    "TOKEN_TTL_S",
    "TOKEN_DEMO_MODE",
    "TOKEN_DEV_MODE",
    "TOKEN_ALLOWED_ORIGINS",
    "TOKEN_RATE_LIMIT_PER_MIN",
    "TOKEN_RATE_LIMIT_BURST",
    "KYUTAI_CHARACTERS_FILE",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def make(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "livekit_api_key": "APIprod",
        "livekit_api_secret": SecretStr(GOOD_SECRET),
        "token_api_keys": SecretStr(GOOD_KEY),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_good_settings_have_no_problems() -> None:
    assert check_settings(make()) == []


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "wss://lk.example")
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIprod")
    monkeypatch.setenv("LIVEKIT_API_SECRET", GOOD_SECRET)
    monkeypatch.setenv("TOKEN_API_KEYS", f" {GOOD_KEY} , other-key-0123456789,")
    monkeypatch.setenv("TOKEN_ALLOWED_ORIGINS", "https://a.example/, https://b.example")
    monkeypatch.setenv("TOKEN_TTL_S", "120")
    monkeypatch.setenv("TOKEN_DEMO_MODE", "true")
    monkeypatch.setenv("TOKEN_RATE_LIMIT_PER_MIN", "3")
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "other-agent")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.livekit_url == "wss://lk.example"
    assert settings.api_keys() == (GOOD_KEY, "other-key-0123456789")
    assert settings.token_allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.token_ttl_s == 120
    assert settings.token_demo_mode is True
    assert settings.token_rate_limit_per_min == 3
    assert settings.livekit_agent_name == "other-agent"
    assert check_settings(settings) == []


def test_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.token_ttl_s == 600
    assert settings.livekit_agent_name == "kyutai-agent"
    assert settings.token_demo_mode is False and settings.token_dev_mode is False
    assert settings.kyutai_characters_file == Path("characters.yaml")


def test_secrets_are_hidden_from_repr() -> None:
    settings = make()
    assert GOOD_SECRET not in repr(settings) and GOOD_SECRET not in str(settings)
    assert GOOD_KEY not in repr(settings)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"livekit_api_key": ""}, "LIVEKIT_API_KEY is not set"),
        ({"livekit_api_secret": SecretStr("")}, "LIVEKIT_API_SECRET is not set"),
        ({"livekit_api_key": "devkey"}, "dev keys"),
        ({"livekit_api_secret": SecretStr("secret")}, "dev keys"),
        ({"livekit_api_secret": SecretStr("short-but-not-dev")}, "shorter than 32"),
        ({"token_api_keys": SecretStr("")}, "No way to obtain a token"),
        ({"token_api_keys": SecretStr("short")}, "at least 16 characters"),
        ({"livekit_url": "localhost:7880"}, "LIVEKIT_URL must be"),
        ({"livekit_agent_name": " "}, "LIVEKIT_AGENT_NAME"),
        (
            {"token_demo_mode": True, "token_allowed_origins": ["*"]},
            "TOKEN_ALLOWED_ORIGINS=*",
        ),
    ],
)
def test_problems_are_named(overrides: dict[str, Any], fragment: str) -> None:
    problems = check_settings(make(**overrides))
    assert any(fragment in p for p in problems), problems


def test_dev_mode_accepts_dev_keys_and_falls_back_to_them() -> None:
    dev = make(
        livekit_api_key="devkey",
        livekit_api_secret=SecretStr("secret"),
        token_api_keys=SecretStr("dev"),
        token_dev_mode=True,
    )
    assert check_settings(dev) == []
    bare = make(livekit_api_key="", livekit_api_secret=SecretStr(""), token_dev_mode=True)
    assert bare.effective_livekit_credentials() == ("devkey", "secret")
    assert check_settings(bare) == []


def test_demo_mode_alone_is_a_way_to_get_tokens() -> None:
    assert check_settings(make(token_api_keys=SecretStr(""), token_demo_mode=True)) == []


def test_problem_messages_never_contain_the_secret() -> None:
    short = "tooshortsecret"
    problems = check_settings(make(livekit_api_secret=SecretStr(short)))
    assert problems and all(short not in p for p in problems)
