"""Silence nudges and goodbyes."""

from __future__ import annotations

from agent.conversation.silence import SilencePolicy, goodbye_said


def test_silence_policy_and_goodbye() -> None:
    policy = SilencePolicy(3)
    assert [policy.on_silence(), policy.on_silence()] == ["nudge", "nudge"]
    policy.on_user_spoke()
    assert [policy.on_silence() for _ in range(3)] == ["nudge", "nudge", "goodbye"]
    assert goodbye_said("Okay, talk soon. Bye!")
    assert goodbye_said("Au revoir !")
    assert not goodbye_said("Goodbyes are hard to write about, tell me more.")
