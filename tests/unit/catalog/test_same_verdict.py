"""`python -m tokens check` and the worker's start-up accept and refuse the same characters files.

Both go through ``catalog.load.load_catalog``: the characters file and the prompt data
(``catalog/data``), checked one against the other. The token service's verdict is its CLI's exit
status; the agent's is its real ``prewarm`` (only the VAD model load is stubbed). Files the
prompt data does not cover (a tutor subject or level without a plan, a quiz show asking for more
questions than the bank holds, small talk without starters) are refused by both.
"""

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from agent import worker
from catalog import prompt_data
from catalog.characters import parse_characters
from catalog.validation import CatalogError
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
    # The prompt data covers these: a plan for each subject's first level, 20 French questions.
    "tutor without levels": _file({**TUTOR, "levels": []}, default="t"),
    "tutor at one level": _file(
        {**TUTOR, "subjects": ["physics"], "levels": ["advanced"]}, default="t"
    ),
    "french quiz of 20": _file(
        _character(language="fr", instructions={"type": "quiz_show", "questions": 20})
    ),
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
    # Valid characters the prompt data (catalog/data) does not cover.
    "tutor subject without a plan": _file({**TUTOR, "subjects": ["maths", "alchemy"]}, default="t"),
    "tutor subject without a plan, no levels": _file(
        {**TUTOR, "subjects": ["alchemy"], "levels": []}, default="t"
    ),
    "tutor level without a plan": _file({**TUTOR, "levels": ["beginner", "guru"]}, default="t"),
}


# Refused for what the prompt data lacks, not by the schema: before the shared start-up check,
# `python -m tokens check` accepted these and only the worker refused them.
PROMPT_DATA_GAPS = (
    "tutor subject without a plan",
    "tutor subject without a plan, no levels",
    "tutor level without a plan",
)


def test_the_prompt_data_gaps_pass_the_schema() -> None:
    for name in PROMPT_DATA_GAPS:
        parse_characters(BAD[name])


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
    except CatalogError:
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


def _small_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped prompt data with a 3-question French bank and no French starters."""
    data_dir = tmp_path / "data"
    shutil.copytree(prompt_data.DATA_DIR, data_dir)
    quiz = yaml.safe_load((data_dir / prompt_data.QUIZ_FILE).read_text(encoding="utf-8"))
    quiz["fr"] = quiz["fr"][:3]
    (data_dir / prompt_data.QUIZ_FILE).write_text(yaml.safe_dump(quiz), encoding="utf-8")
    starters = yaml.safe_load((data_dir / prompt_data.STARTERS_FILE).read_text(encoding="utf-8"))
    del starters["fr"]
    (data_dir / prompt_data.STARTERS_FILE).write_text(yaml.safe_dump(starters), encoding="utf-8")
    monkeypatch.setattr(prompt_data, "DATA_DIR", data_dir)  # both sides read the default


SMALL_DATA: dict[str, tuple[dict[str, Any], bool]] = {
    "french quiz within the bank": (
        _file(_character(language="fr", instructions={"type": "quiz_show", "questions": 3})),
        True,
    ),
    "french quiz larger than the bank": (
        _file(_character(language="fr", instructions={"type": "quiz_show", "questions": 4})),
        False,
    ),
    "english quiz also speaking french": (
        _file(
            _character(languages=["en", "fr"], instructions={"type": "quiz_show", "questions": 5})
        ),
        False,
    ),
    "english small talk": (_file(_character()), True),
    "small talk in french without starters": (_file(_character(language="fr")), False),
}


@pytest.mark.parametrize("name", list(SMALL_DATA))
def test_same_verdict_with_smaller_prompt_data(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_data(tmp_path, monkeypatch)
    data, accepted = SMALL_DATA[name]
    path = tmp_path / "characters.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert _verdicts(path, monkeypatch) == (accepted, accepted)


def test_the_token_service_names_what_the_prompt_data_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "characters.yaml"
    path.write_text(yaml.safe_dump(BAD["tutor level without a plan"]), encoding="utf-8")
    assert not _token_service_accepts(path, monkeypatch)
    err = capsys.readouterr().err
    assert "prompt data does not cover the characters" in err
    assert "t: no tutor plan for subject 'maths' at level 'guru' in tutor_plans.yaml" in err
    assert "Traceback" not in err
