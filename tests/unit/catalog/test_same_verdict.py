"""`python -m tokens check` and the worker's start-up accept and refuse the same characters files.

Both go through ``catalog.characters.load_characters``. The token service's verdict is its CLI's
exit status; the agent's is its real ``prewarm`` (characters + prompt data check; only the VAD
model load is stubbed). The good files here stay within the agent's prompt data (tutor subjects
and levels with a plan): that coverage check is the agent's own, as the data ships with it.
"""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from agent import worker
from agent.conversation.prompt import PromptDataError
from catalog.characters import CharactersError
from tests.samples import sample_catalog_data
from tokens.__main__ import main as tokens_main

REPO_ROOT = Path(__file__).resolve().parents[3]
VOICE = "vctk/p225_023.wav.1e68beda@240.safetensors"


def _character(**fields: Any) -> dict[str, Any]:
    character: dict[str, Any] = {
        "id": "a",
        "name": "A",
        "language": "en",
        "voice": VOICE,
        "instructions": {"type": "smalltalk"},
    }
    character.update(fields)
    return {key: value for key, value in character.items() if value is not None}


def _file(*characters: dict[str, Any], default: str = "a") -> dict[str, Any]:
    return {"default": default, "characters": list(characters)}


TUTOR = {
    "id": "t",
    "name": "T",
    "language": "en",
    "languages": ["en", "fr"],
    "voice": VOICE,
    "voice_by_language": {"fr": "cml-tts/fr/2154_2576_000020.wav.1e68beda@240.safetensors"},
    "takes_subject": True,
    "subjects": ["maths", "history"],
    "levels": ["beginner", "advanced"],
    "instructions": {"type": "tutor"},
}

GOOD: dict[str, Any] = {
    "minimal": _file(_character()),
    "token samples": sample_catalog_data(),
    "tutor": _file(TUTOR, default="t"),
    "every type": _file(
        _character(),
        _character(id="q", instructions={"type": "quiz_show", "questions": 20}),
        _character(id="l", instructions={"type": "life_advice", "persona": {"en": "Kind."}}),
        _character(id="n", instructions={"type": "news", "spoken_name": "Dev"}),
        _character(id="e", instructions={"type": "explanation"}, tools=["end_call"]),
        _character(
            id="c",
            language="fr",
            languages=["fr", "en"],
            instructions={"type": "constant", "text": {"fr": "Tu es C.", "en": "You are C."}},
        ),
        TUTOR,
    ),
    "unknown character key": _file(_character(colour="blue")),
}

BAD: dict[str, Any] = {
    "tutor without takes_subject": _file(
        {**TUTOR, "takes_subject": False, "subjects": [], "levels": []}, default="t"
    ),
    "subject for a non-tutor": _file(_character(takes_subject=True, subjects=["maths"])),
    "takes_subject without subjects": _file({**TUTOR, "subjects": []}, default="t"),
    "duplicate subjects": _file({**TUTOR, "subjects": ["maths", "maths"]}, default="t"),
    "duplicate levels": _file({**TUTOR, "levels": ["beginner", "beginner"]}, default="t"),
    "unknown tool": _file(_character(tools=["current_time", "teleport"])),
    "extra instruction key": _file(_character(instructions={"type": "smalltalk", "prompt": "x"})),
    "no instructions": _file(_character(instructions=None)),
    "unknown instruction type": _file(_character(instructions={"type": "sing"})),
    "constant without text": _file(_character(instructions={"type": "constant"})),
    "too many quiz questions": _file(
        _character(instructions={"type": "quiz_show", "questions": 21})
    ),
    "bad id": _file(_character(id="a b"), default="a b"),
    "empty voice": _file(_character(voice="")),
    "voice for an unknown language": _file(_character(voice_by_language={"de": VOICE})),
    "voice for a language it does not speak": _file(_character(voice_by_language={"fr": VOICE})),
    "language outside languages": _file(_character(languages=["fr"])),
    "unknown language": _file(_character(language="de")),
    "default is not a character": _file(_character(), default="b"),
    "duplicate ids": _file(_character(), _character()),
    "no characters": _file(),
    "not a mapping": ["a", "b"],
}


def _token_service_accepts(path: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIsameverdict")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "0123456789abcdef0123456789abcdef-same")
    monkeypatch.setenv("TOKEN_DEMO_MODE", "1")
    monkeypatch.setenv("KYUTAI_CHARACTERS_FILE", str(path))
    return tokens_main(["check"]) == 0


def _worker_starts(path: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setenv("KYUTAI_CHARACTERS_FILE", str(path))
    monkeypatch.setattr(worker, "load_vad", lambda settings: None)
    try:
        worker.prewarm(SimpleNamespace(userdata={}))  # type: ignore[arg-type]
    except (CharactersError, PromptDataError):
        return False
    return True


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TOKEN_API_KEYS", "TOKEN_DEV_MODE", "TOKEN_ALLOWED_ORIGINS", "TOKEN_TTL_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file of the developer's


def _verdicts(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, bool]:
    return _token_service_accepts(path, monkeypatch), _worker_starts(path, monkeypatch)


@pytest.mark.parametrize("name", list(GOOD))
def test_both_accept(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "characters.yaml"
    path.write_text(yaml.safe_dump(GOOD[name]), encoding="utf-8")
    assert _verdicts(path, monkeypatch) == (True, True)


@pytest.mark.parametrize("name", list(BAD))
def test_both_refuse(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "characters.yaml"
    path.write_text(yaml.safe_dump(BAD[name]), encoding="utf-8")
    assert _verdicts(path, monkeypatch) == (False, False)


def test_the_repository_file_is_accepted_by_both(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _verdicts(REPO_ROOT / "characters.yaml", monkeypatch) == (True, True)


def test_unreadable_files_are_refused_by_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("default: [unclosed", encoding="utf-8")
    for path in (tmp_path / "missing.yaml", broken):
        assert _verdicts(path, monkeypatch) == (False, False)
