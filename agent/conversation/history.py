"""What the LLM sees of the conversation: cleaned, marked where cut off, and kept in budget.

Pure functions over a simple message form so they are testable without the framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

CUT_MARK = "—"  # appended to an answer the listener interrupted: the LLM knows it was cut
OMITTED_NOTE = "(Earlier parts of this conversation were left out to save space.)"


@dataclass(frozen=True)
class Message:
    role: str  # system | developer | user | assistant | tool
    text: str
    interrupted: bool = False
    # Tool calls and their outputs travel with the message before them (opaque to this module).
    attachments: tuple[object, ...] = field(default=())
    attachment_tokens: int = 0


def cost(msg: Message) -> int:
    return estimate_tokens(msg.text) + msg.attachment_tokens


def estimate_tokens(text: str) -> int:
    """About 4 characters per token for English/French: good enough for a budget."""
    return len(text) // 4 + 4


def clean(messages: Sequence[Message]) -> list[Message]:
    """Drop empty or cut-mark-only messages, mark interrupted answers, merge same-role runs."""
    out: list[Message] = []
    for msg in messages:
        text = msg.text.strip()
        if msg.role in ("user", "assistant") and text in ("", CUT_MARK) and not msg.attachments:
            continue
        if msg.role == "assistant" and msg.interrupted and not text.endswith(CUT_MARK):
            text = f"{text} {CUT_MARK}"
        msg = replace(msg, text=text)
        if out and msg.role in ("user", "assistant") and out[-1].role == msg.role:
            prev = out[-1]
            out[-1] = replace(
                prev,
                text=f"{prev.text} {msg.text}".strip(),
                interrupted=msg.interrupted,
                attachments=prev.attachments + msg.attachments,
                attachment_tokens=prev.attachment_tokens + msg.attachment_tokens,
            )
            continue
        out.append(msg)
    # Some chat templates insist that a user message comes before the first assistant one.
    first_turn = next((i for i, m in enumerate(out) if m.role in ("user", "assistant")), None)
    if first_turn is not None and out[first_turn].role == "assistant":
        out.insert(first_turn, Message("user", "Hello."))
    return out


def fit_budget(messages: Sequence[Message], max_tokens: int) -> list[Message]:
    """Keep system/developer messages and the newest turns that fit in `max_tokens`.

    Oldest turns go first, a whole user turn at a time, and a note says something was left out,
    so a long conversation never overflows the model's context window.
    """
    head = [m for m in messages if m.role in ("system", "developer")]
    turns = [m for m in messages if m.role not in ("system", "developer")]
    budget = max_tokens - sum(cost(m) for m in head)
    kept: list[Message] = []
    used = 0
    for msg in reversed(turns):
        msg_cost = cost(msg)
        if used + msg_cost > budget and kept:
            break
        kept.append(msg)
        used += msg_cost
    kept.reverse()
    dropped = len(turns) - len(kept)
    # Start on a user message so the history reads as whole exchanges.
    while kept and kept[0].role != "user" and len(kept) > 1:
        kept.pop(0)
        dropped += 1
    if dropped:
        return [*head, Message("system", OMITTED_NOTE), *kept]
    return [*head, *kept]
