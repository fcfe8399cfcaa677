"""`python -m dispatcher` refuses a bad configuration with one line per problem."""

from __future__ import annotations

import pytest

from dispatcher.__main__ import main


def test_missing_credentials_are_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_AGENT_NAME", "AGENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "dispatcher: LIVEKIT_API_KEY: not set" in err
    assert "dispatcher: LIVEKIT_API_SECRET: not set" in err
    assert "Traceback" not in err


def test_a_blank_agent_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIVEKIT_API_KEY", "key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "  ")
    with pytest.raises(SystemExit):
        main([])
    assert "LIVEKIT_AGENT_NAME" in capsys.readouterr().err


def test_a_missing_characters_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dispatcher reads the worker's catalogue (a Moshi room waits in a lane of its own):
    without it, it says which file and which variable, and does not start."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIVEKIT_API_KEY", "key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    monkeypatch.setenv("KYUTAI_CHARACTERS_FILE", "nowhere.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "nowhere.yaml" in err and "KYUTAI_CHARACTERS_FILE" in err
    assert "Traceback" not in err
