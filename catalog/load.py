"""The one start-up check of the catalogue, shared by the worker and the token service.

``load_catalog`` reads the characters file (``catalog/characters.py``) and the prompt data
(``catalog/data``, ``catalog/prompt_data.py``), and checks that the data covers what every
character needs (a tutor's subjects and levels have plans, a quiz show's bank is large enough,
small talk has starters). The worker's ``prewarm`` and ``python -m tokens check`` / ``serve``
call it and nothing else, so a file one accepts the other accepts, and the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.characters import CharacterSet, load_characters
from catalog.prompt_data import PromptData, load_prompt_data


@dataclass(frozen=True)
class Catalog:
    """The checked characters and the prompt data that covers them."""

    characters: CharacterSet
    prompt_data: PromptData


def load_catalog(characters_file: Path | None = None, data_dir: Path | None = None) -> Catalog:
    """Read and check the catalogue; raise ``CatalogError`` listing every problem.

    ``characters_file``: default the repository's ``characters.yaml``; ``data_dir``: default
    ``catalog/data``. A ``CharactersError`` or a ``PromptDataError``, both ``CatalogError``.
    """
    characters = load_characters(characters_file)
    prompt_data = load_prompt_data(data_dir)
    prompt_data.check(characters)
    return Catalog(characters=characters, prompt_data=prompt_data)
