"""Silence and goodbyes: what the LLM sees when the user says nothing, and when a talk ends.

Pure; the prompt explains the marker to the LLM, the session events apply the policy.
"""

from __future__ import annotations

from typing import Any, Literal

SILENCE_MESSAGE = "..."
"""The user message that stands for a silence (Unmute's marker; the prompt explains it)."""
GOODBYE: dict[str, str] = {"en": "Bye!", "fr": "Au revoir !"}
"""How the agent ends a conversation; a reply ending with it hangs up."""

SilenceAction = Literal["nudge", "goodbye"]


def is_silence(text: str) -> bool:
    return text.strip() == SILENCE_MESSAGE


class SilencePolicy:
    """Unmute's silence handling: nudge after each silence, say goodbye after too many.

    Pure state: the session code asks what to do when the user goes quiet.
    """

    def __init__(self, max_silent_turns: int) -> None:
        self.max_silent_turns = max_silent_turns
        self.silent_turns = 0

    def on_user_spoke(self) -> None:
        self.silent_turns = 0

    def on_silence(self) -> SilenceAction:
        self.silent_turns += 1
        return "goodbye" if self.silent_turns >= self.max_silent_turns else "nudge"


def goodbye_said(text: str) -> bool:
    """Whether a message ends the conversation (Unmute hangs up on a reply ending in 'bye!')."""
    words = "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()
    tail = words[-4:]
    return any(w in ("bye", "goodbye", "revoir", "ciao") for w in tail)


def silence_reply_kwargs(action: SilenceAction, language: str) -> dict[str, Any]:
    if action == "goodbye":
        text = (
            "L'utilisateur ne répond plus. Dis au revoir brièvement."
            if language == "fr"
            else "The user has stayed silent several times. Say a brief goodbye."
        )
        return {"user_input": SILENCE_MESSAGE, "instructions": text}
    return {"user_input": SILENCE_MESSAGE}
