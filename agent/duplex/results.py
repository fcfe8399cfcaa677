"""What a tool raised in a duplex conversation leaves behind (pure): the card every result
becomes for the room, and the text a spoken result is read from."""

from __future__ import annotations

import json
from typing import Any

from livekit.agents import llm

TOOL_TOPIC = "kyutai.tool"
"""Text stream topic of tool cards: one JSON object per result (see `card`)."""
MAX_OUTPUT_CHARS = 2000


def card(call: llm.FunctionCall, output: llm.FunctionCallOutput) -> dict[str, Any]:
    """``{call_id, name, arguments, output, is_error}``: what the widget renders as a card."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        arguments = {}
    return {
        "call_id": call.call_id,
        "name": call.name,
        "arguments": arguments if isinstance(arguments, dict) else {},
        "output": str(output.output)[:MAX_OUTPUT_CHARS],
        "is_error": bool(output.is_error),
    }


def spoken_text(output: llm.FunctionCallOutput) -> str | None:
    """What the TTS reads out for a spoken rule's result; nothing for a failed call."""
    text = str(output.output).strip()
    if output.is_error or not text:
        return None
    return text[:MAX_OUTPUT_CHARS]
