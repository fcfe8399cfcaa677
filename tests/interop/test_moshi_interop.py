"""Moshi drop-in both ways: the same moshi.server-protocol client (Opus through sphn, like
`moshi/client.py`) holds the same conversation with Kyutai's own Python `moshi.server` and with
our `/api/chat`, both serving the tiny keyed Moshi checkpoint from its directory.

moshi.server runs as Kyutai ships it, on CPU (its one `torch.cuda.synchronize()` stubbed out)
and in bfloat16 (its default); ours runs batched and clocked in float32. The conversations must
agree on what the product relies on: a greeting in the same words, silence while the user
speaks, an answer in the same words after the user stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.inference_server import InferenceServer, start_inference_server
from harness.moshi_client import BinaryChat, Conversation, frames_of
from harness.moshi_py_server import MoshiPyServer, start_moshi_py_server
from harness.speech import read_wav, speech_wav

pytestmark = pytest.mark.timeout(300)

SILENT = np.zeros(1920, np.float32)
LOUD = 0.03


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.tiny import ensure_tiny_checkpoints

    path = tmp_path_factory.mktemp("kyutai-tiny")
    ensure_tiny_checkpoints(path)
    return path


@pytest.fixture(scope="module")
def ours(cache: Path) -> Iterator[InferenceServer]:
    with start_inference_server(
        cache, extra_args=["--engines", "moshi", "--moshi-batch-size", "2"]
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def kyutai(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoshiPyServer]:
    from inference.tiny import tiny_root

    with start_moshi_py_server(
        tiny_root(cache) / "moshi", tmp_path_factory.mktemp("moshi-py")
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def script() -> tuple[list[np.ndarray], int]:
    """16 silent frames, the user's sentence, 24 silent frames; and the last voiced frame."""
    pcm, _ = read_wav(speech_wav("could you tell me the time please", lead_silence_s=0.0))
    voice = frames_of(pcm)
    loud = [float(np.sqrt(np.mean(f**2))) > 0.02 for f in voice]
    last_voiced = 16 + len(voice) - 1 - loud[::-1].index(True)
    return [SILENT] * 16 + voice + [SILENT] * 24, last_voiced


def _turns(conv: Conversation, last_voiced: int) -> tuple[str, str, int]:
    """Greeting text, answer text, loud frames while the user spoke (after 6 frames)."""
    greeting = conv.text(0, 16).strip()
    answer = conv.text(last_voiced + 1).strip()
    during = sum(s.rms > LOUD for s in conv.steps[16 + 6 : last_voiced + 1])
    return greeting, answer, during


async def test_same_conversation_on_kyutai_moshi_server_and_ours(
    ours: InferenceServer, kyutai: MoshiPyServer, script: tuple[list[np.ndarray], int]
) -> None:
    frames, last_voiced = script
    # moshi.server steps when a frame arrives and answers the first with nothing (the acoustic
    # delay): one output less, and two frames must be sent before the first output comes.
    theirs = await BinaryChat(kyutai.chat_url, kyutai.api_key).run(frames, lead=2, missing=1)
    mine = await BinaryChat(ours.chat_url, ours.api_key).run(frames)
    assert len(theirs.steps) == len(frames) - 1 and len(mine.steps) == len(frames)
    g_theirs, a_theirs, during_theirs = _turns(theirs, last_voiced - 1)
    g_mine, a_mine, during_mine = _turns(mine, last_voiced)
    assert g_theirs and g_theirs == g_mine, (g_theirs, g_mine)
    assert a_theirs and a_theirs == a_mine, (a_theirs, a_mine)
    # moshi.server steps when a frame arrives; ours steps on its clock, where a frame that
    # comes late is stepped as silence and can widen a gap between words into a one- or
    # two-frame start of an answer (a loaded machine): bounded, not forbidden.
    assert during_theirs == 0 and during_mine <= 2, (during_theirs, during_mine)
    assert max(s.rms for s in theirs.steps[:10]) > LOUD
    assert max(s.rms for s in mine.steps[:10]) > LOUD
