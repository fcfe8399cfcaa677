"""Intent rules → tool calls, on whole utterances (pure)."""

from __future__ import annotations

from agent.duplex.intents import IntentWatcher, match, normalize
from catalog.characters import IntentRule

TIME = IntentRule(says=("what time is it", "the time"), tool="current_time", spoken=True)
DEFINE = IntentRule(says=("define",), tool="look_up_definition", argument="term")
HOWDY = IntentRule(says=("howdy",), speaker="agent", tool="look_up_definition", argument="term")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_normalize_ignores_case_punctuation_and_spacing() -> None:
    assert normalize("  What TIME, is it?!  ") == "what time is it"
    assert normalize("What’s up") == "what's up"


def test_a_phrase_matches_on_word_boundaries_only() -> None:
    assert match(TIME, "Hey, what time is it now?") is not None
    assert match(TIME, "Do you know the time?") is not None
    assert match(TIME, "what timeless music") is None
    assert match(TIME, "the timer went off") is None


def test_the_argument_is_the_words_after_the_phrase() -> None:
    call = match(DEFINE, "Could you define photosynthesis for me?")
    assert call is not None and call.arguments == {"term": "photosynthesis for me"}
    assert match(DEFINE, "Please define.") is None  # nothing to look up


def test_rules_listen_to_their_speaker_only() -> None:
    watcher = IntentWatcher([TIME, HOWDY], clock=Clock())
    assert [c.tool for c in watcher.heard("agent", "what time is it")] == []
    calls = watcher.heard("agent", " howdy text")
    assert [(c.tool, c.arguments) for c in calls] == [("look_up_definition", {"term": "text"})]


def test_once_per_utterance_then_a_cooldown() -> None:
    clock = Clock()
    watcher = IntentWatcher([TIME], cooldown_s=10, clock=clock)
    # both phrases in one utterance: one call
    assert len(watcher.heard("user", "what time is it, the time please")) == 1
    clock.now += 5
    assert watcher.heard("user", "what time is it?") == []  # cooling down
    clock.now += 5.1
    assert len(watcher.heard("user", "what time is it?")) == 1


def test_several_rules_can_fire_on_one_utterance() -> None:
    watcher = IntentWatcher([TIME, DEFINE], clock=Clock())
    calls = watcher.heard("user", "what time is it and define entropy")
    assert [c.tool for c in calls] == ["current_time", "look_up_definition"]
    assert calls[1].arguments == {"term": "entropy"}
    assert calls[0].rule.spoken and calls[0].utterance.startswith("what time")
