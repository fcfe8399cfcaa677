"""`python -m inference selftest` on CPU with the tiny profile: the operator's first command
on a GPU node, run here through the same start-up path (compile policy, load, warm-up,
engine threads, one model lock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kyutai-tiny")


def _selftest(cache: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("NO_TORCH_COMPILE", None)  # the policy decides, as in production
    env.pop("NO_CUDA_GRAPH", None)
    cmd = [sys.executable, "-m", "inference", "selftest", "--models", "tiny"]
    return subprocess.run(
        [*cmd, "--cache-dir", str(cache), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_selftest_prints_the_table_and_a_verdict_that_matches_its_exit_status(
    tiny_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "selftest.json"
    proc = _selftest(tiny_cache, "--seconds", "2", "--out", str(out))
    print(proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("selftest: profile tiny on cpu")
    assert "torch.compile off, CUDA graphs off" in lines[0]
    assert "warm-up: stt" in lines[1] and "tts" in lines[1]
    assert "first session" in lines[2] and "second session" in lines[2]
    header = next(i for i, line in enumerate(lines) if "STT RTF" in line)
    rows = [line.split() for line in lines[header + 1 :] if line.strip()[:1].isdigit()]
    # CPU defaults: 8 STT and 4 TTS slots, climbing from one slot each.
    assert [(r[0], r[3]) for r in rows] == [("1", "1"), ("2", "1"), ("4", "2"), ("8", "4")]
    verdict = lines[-1]
    assert verdict.startswith("verdict: ")
    # Real time or not depends on this machine; the exit status must say the same thing.
    assert proc.returncode == (0 if verdict.startswith("verdict: OK") else 1), proc.stderr
    report = json.loads(out.read_text())
    assert report["profile"] == "tiny" and report["device"] == "cpu"
    assert [(lv["stt_slots"], lv["tts_slots"]) for lv in report["levels"]][-1] == (8, 4)
    assert all(not lv["errors"] for lv in report["levels"]), report["levels"]
    assert report["tts_first_session_first_audio_ms"] is not None
    assert report["tts_second_session_first_audio_ms"] is not None
    assert set(report["warmup_s"]) == {"stt", "tts"}
    assert report["ok"] == (proc.returncode == 0)


def test_an_impossible_slot_count_exits_non_zero_with_a_clear_message(tiny_cache: Path) -> None:
    proc = _selftest(tiny_cache, "--slots", "100000", timeout=120)
    assert proc.returncode == 2
    assert "--slots 100000 is impossible: a batch holds 1 to 4096 slots" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _selftest(tiny_cache, "--slots", "0", timeout=120)
    assert proc.returncode == 2 and "impossible" in proc.stderr


def test_json_on_stdout(tiny_cache: Path) -> None:
    proc = _selftest(tiny_cache, "--slots", "1", "--seconds", "1", "--json")
    report = json.loads(proc.stdout)
    assert [(lv["stt_slots"], lv["tts_slots"]) for lv in report["levels"]] == [(1, 1)]
    assert report["verdict"] in proc.stderr
    assert proc.returncode == (0 if report["ok"] else 1)
