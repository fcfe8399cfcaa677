"""What a waiting room waits for (pure): a Moshi slot, or the cascade's STT and TTS.

Workers decline a room that wants Moshi while Moshi is full but take cascade rooms, so the two
wait in separate lanes of the line. The lane comes from the catalogue, as the worker decides.
"""

from __future__ import annotations

from collections.abc import Callable

from catalog.characters import CharacterSet
from catalog.dispatch import wants_duplex

CASCADE = "cascade"
MOSHI = "moshi"


def lane_by_character(characters: CharacterSet) -> Callable[[str], str]:
    """A room's lane from its dispatch metadata (bad metadata: the default character's)."""

    def lane_of(metadata: str) -> str:
        return MOSHI if wants_duplex(metadata, characters) else CASCADE

    return lane_of
