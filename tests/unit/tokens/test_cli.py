from pathlib import Path

import pytest

from tokens.__main__ import EXIT_CONFIG, main

REPO_ROOT = Path(__file__).resolve().parents[3]
SECRET = "0123456789abcdef0123456789abcdef-cli"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "TOKEN_API_KEYS",
        "TOKEN_DEMO_MODE",
        "TOKEN_DEV_MODE",
        "TOKEN_ALLOWED_ORIGINS",
        "TOKEN_TTL_S",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KYUTAI_CHARACTERS_FILE", str(REPO_ROOT / "characters.yaml"))


def test_missing_configuration_exits_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "LIVEKIT_API_KEY is not set" in err
    assert "TOKEN_API_KEYS" in err and "TOKEN_DEMO_MODE" in err
    assert "Traceback" not in err


def test_dev_keys_are_refused_unless_dev_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    monkeypatch.setenv("TOKEN_DEMO_MODE", "1")
    assert main(["check"]) == EXIT_CONFIG
    assert "dev keys" in capsys.readouterr().err
    monkeypatch.setenv("TOKEN_DEV_MODE", "1")
    assert main(["check"]) == 0
    assert "configuration OK" in capsys.readouterr().out


def test_invalid_values_name_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKEN_DEV_MODE", "1")
    monkeypatch.setenv("TOKEN_DEMO_MODE", "1")
    monkeypatch.setenv("TOKEN_TTL_S", "ten-minutes")
    assert main(["check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "TOKEN_TTL_S" in err and "ten-minutes" not in err


def test_a_broken_characters_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIprod")
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    monkeypatch.setenv("TOKEN_DEMO_MODE", "1")
    monkeypatch.setenv("KYUTAI_CHARACTERS_FILE", str(tmp_path / "nope.yaml"))
    assert main(["check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "cannot read characters file" in err
    assert SECRET not in err


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
