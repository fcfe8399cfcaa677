"""Which tools the words of a duplex conversation call for (pure).

Moshi calls no tools and reads no text, so a character's `intents` rules stand in: a phrase in
a user's utterance (their final transcript) or in one of Moshi's (a burst of its speech, as
heard) raises the rule's tool, at most once per utterance, and the same rule not again within a
cool-down. A rule with an `argument` passes the words after the phrase.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from catalog.characters import IntentRule

Speaker = Literal["user", "agent"]
COOLDOWN_S = 10.0
_WORD = re.compile(r"[\w']+")


def normalize(text: str) -> str:
    """Lower case, words only: punctuation and spacing never decide a match."""
    return " ".join(_WORD.findall(text.lower().replace("’", "'")))


@dataclass(frozen=True)
class ToolCall:
    tool: str
    arguments: dict[str, str]
    rule: IntentRule
    utterance: str


def match(rule: IntentRule, text: str) -> ToolCall | None:
    """The call `rule` raises for the utterance `text`, if any."""
    words = f" {normalize(text)} "
    for phrase in rule.says:
        said = normalize(phrase)
        at = words.find(f" {said} ")
        if not said or at < 0:
            continue
        arguments: dict[str, str] = {}
        if rule.argument is not None:
            rest = words[at + len(said) + 2 :].strip()
            if not rest:
                continue  # nothing to pass: "define the word" alone looks nothing up
            arguments[rule.argument] = rest
        return ToolCall(rule.tool, arguments, rule, text)
    return None


class IntentWatcher:
    def __init__(
        self,
        rules: Sequence[IntentRule],
        *,
        cooldown_s: float = COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = tuple(rules)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._last_fired: dict[int, float] = {}

    def heard(self, speaker: Speaker, utterance: str) -> list[ToolCall]:
        """The calls one whole utterance of `speaker` raises (each rule at most once)."""
        now = self._clock()
        calls: list[ToolCall] = []
        for i, rule in enumerate(self.rules):
            if rule.speaker != speaker:
                continue
            last = self._last_fired.get(i)
            if last is not None and now - last < self.cooldown_s:
                continue
            call = match(rule, utterance)
            if call is not None:
                self._last_fired[i] = now
                calls.append(call)
        return calls
