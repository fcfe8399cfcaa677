"""The tool registry offers exactly the tool names the characters file may list."""

import pytest

from agent.conversation import tools
from catalog.characters import DEFAULT_TOOLS, KNOWN_TOOLS


def test_known_tools_match_the_tools_module() -> None:
    assert set(tools.TOOLS) == KNOWN_TOOLS


def test_a_registry_that_drifts_from_the_catalogue_is_refused() -> None:
    tools.check_registry(tools.TOOLS)
    with pytest.raises(RuntimeError, match=r"missing \['end_call'\]"):
        tools.check_registry({k: v for k, v in tools.TOOLS.items() if k != "end_call"})
    with pytest.raises(RuntimeError, match=r"not in the catalogue \['teleport'\]"):
        tools.check_registry({**tools.TOOLS, "teleport": tools.TOOLS["end_call"]})


def test_every_character_gets_the_default_tools_first() -> None:
    selected = tools.tools_for(["record_answer"])
    assert [t.info.name for t in selected] == [*DEFAULT_TOOLS, "record_answer"]
