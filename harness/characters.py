"""A characters file for tests of duplex mode: the shipped characters (`moshi` as users get it)
plus duplex characters whose intents the tiny Moshi's own words ("howdy text") trigger, since
the tiny STT's words for a user are not English."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.livekit_server import ROOT

MOSHI_VOICE = "unmute-prod-website/p329_022.wav.1e68beda@240.safetensors"


def duplex_character(id_: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "name": id_,
        "mode": "duplex",
        "language": "en",
        "voice": MOSHI_VOICE,
        **fields,
    }


def write_duplex_characters(path: Path) -> Path:
    data = yaml.safe_load((ROOT / "characters.yaml").read_text(encoding="utf-8"))
    data["characters"] += [
        # "howdy" → look_up_definition(term=<the words after it>), a 1.5 s tool: a card
        duplex_character(
            "moshi-lookup",
            name="Moshi (lookup)",
            tools=["look_up_definition"],
            intents=[
                {
                    "says": "howdy",
                    "speaker": "agent",
                    "tool": "look_up_definition",
                    "argument": "term",
                }
            ],
        ),
        # "howdy" → current_time, read out by the Kyutai TTS while Moshi is held
        duplex_character(
            "moshi-clock",
            intents=[{"says": "howdy", "speaker": "agent", "tool": "current_time", "spoken": True}],
        ),
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path
