"""A waiting room's lane: from its dispatch metadata, through the worker's catalogue."""

from __future__ import annotations

from catalog.characters import load_characters
from dispatcher.lanes import CASCADE, MOSHI, lane_by_character


def test_a_duplex_character_waits_for_moshi_and_the_others_for_the_cascade() -> None:
    lane_of = lane_by_character(load_characters())  # the shipped characters.yaml
    assert lane_of('{"character": "moshi"}') == MOSHI
    assert lane_of('{"character": "tutor"}') == CASCADE
    # no metadata, bad metadata, an unknown character: the default character's lane
    assert lane_of("") == lane_of("not json") == lane_of('{"character": "nobody"}') == CASCADE
