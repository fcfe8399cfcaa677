"""Which end-of-turn mode the STT model behind KYUTAI_STT_URL can serve.

Turns end on Kyutai's pause heads by default (`KYUTAI_TURN_DETECTION=stt`). Not every Kyutai
STT has them: `kyutai/stt-2.6b-en` has none, and a 2.5 s delay. Asked for pause-head turns,
such a model would never end one, so the worker asks the STT server what it serves
(`GET /api/build_info`: our inference server reports `stt.pause_heads` and `stt.delay_s`) and
falls back to Silero VAD turns, with a flush long enough for the model's delay to bring the
last words out. A server that does not say (Kyutai's moshi-server answers another shape) is
taken at the configured mode.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

from agent.ops.urls import http_endpoint

FRAME_S = 0.08  # one STT step
DEFAULT_DELAY_S = 0.5  # kyutai/stt-1b-en_fr
FLUSH_MARGIN_S = 1.5  # how long past the model delay a flush marker may take to come back


@dataclass(frozen=True)
class SttModel:
    """What an STT server says of its model; None where it does not say."""

    pause_heads: bool | None = None
    delay_s: float | None = None
    source: str = ""


@dataclass(frozen=True)
class TurnMode:
    turn_detection: Literal["stt", "vad"]
    flush_frames: int
    flush_timeout_s: float
    note: str
    """Why this mode, for the start-up log."""


def parse_build_info(body: Any, source: str = "") -> SttModel:
    stt = body.get("stt") if isinstance(body, dict) else None
    if not isinstance(stt, dict):
        return SttModel(source=source)
    heads = stt.get("pause_heads")
    delay = stt.get("delay_s")
    return SttModel(
        pause_heads=heads if isinstance(heads, bool) else None,
        delay_s=float(delay) if isinstance(delay, int | float) and delay >= 0 else None,
        source=source,
    )


def flush_frames(delay_s: float) -> int:
    """Silent frames that bring out every word still inside the model delay (+1 for the
    frame in progress): 0.5 s → 8, 2.5 s → 33."""
    return math.ceil(delay_s / FRAME_S - 1e-9) + 1


def choose_turn_mode(configured: Literal["stt", "vad"], model: SttModel) -> TurnMode:
    delay = model.delay_s if model.delay_s is not None else DEFAULT_DELAY_S
    frames = flush_frames(delay)
    timeout = max(3.0, delay + FLUSH_MARGIN_S)
    where = model.source or "the STT server"
    if configured == "stt" and model.pause_heads is False:
        return TurnMode(
            "vad",
            frames,
            timeout,
            f"{where} serves an STT model without pause heads (delay {delay:.2f} s): "
            f"end of turn from Silero VAD, flushing {frames} frames",
        )
    if model.pause_heads is None:
        said = "does not say whether its STT model has pause heads"
    else:
        said = f"has pause heads: {model.pause_heads}"
    return TurnMode(
        configured,
        frames,
        timeout,
        f"{where} {said} (delay {delay:.2f} s): end of turn from "
        + ("the pause heads" if configured == "stt" else "Silero VAD"),
    )


def fetch_stt_model(urls: list[str], timeout_s: float = 2.0) -> SttModel | None:
    """The first STT server that answers `GET /api/build_info`; None when none answers."""
    for url in urls:
        info_url = http_endpoint(url, "/api/build_info")
        try:
            with urllib.request.urlopen(info_url, timeout=timeout_s) as resp:
                body = json.loads(resp.read(1_000_000))
        except (urllib.error.URLError, OSError, ValueError):
            continue
        return parse_build_info(body, source=info_url)
    return None
