"""Tool results in duplex mode: the card the room gets, the text read out (pure)."""

from __future__ import annotations

from livekit.agents import llm

from agent.duplex.results import MAX_OUTPUT_CHARS, card, spoken_text


def call(arguments: str = '{"term": "entropy"}') -> llm.FunctionCall:
    return llm.FunctionCall(call_id="c1", name="look_up_definition", arguments=arguments)


def output(text: str, *, is_error: bool = False) -> llm.FunctionCallOutput:
    return llm.FunctionCallOutput(
        call_id="c1", name="look_up_definition", output=text, is_error=is_error
    )


def test_a_card_carries_the_call_and_its_result() -> None:
    assert card(call(), output("A measure of disorder.")) == {
        "call_id": "c1",
        "name": "look_up_definition",
        "arguments": {"term": "entropy"},
        "output": "A measure of disorder.",
        "is_error": False,
    }


def test_bad_arguments_and_long_outputs_still_make_a_card() -> None:
    data = card(call("not json"), output("x" * (MAX_OUTPUT_CHARS + 50)))
    assert data["arguments"] == {} and len(data["output"]) == MAX_OUTPUT_CHARS
    assert card(call("[1, 2]"), output("ok"))["arguments"] == {}


def test_only_a_successful_result_is_read_out() -> None:
    assert spoken_text(output("  It is noon.  ")) == "It is noon."
    assert spoken_text(output("boom", is_error=True)) is None
    assert spoken_text(output("   ")) is None
