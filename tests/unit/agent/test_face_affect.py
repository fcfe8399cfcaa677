"""The face's affect: lexicon readings, the tracker's hysteresis and rate limit, cues, and what
is published to the room."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.face.affect import LABELS, POINTS, AffectTracker, Bias, read
from agent.face.cues import CueFilter
from agent.face.publisher import AFFECT_ATTRIBUTE, EMOTION_ATTRIBUTE, FacePublisher


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("That is wonderful news, congratulations!", "happy"),
        ("Oh, I am so sorry to hear that. That is sad.", "sad"),
        ("That is outrageous, I am furious about it.", "angry"),
        ("I am a bit scared of the dark, to be honest.", "afraid"),
        ("Wow, that is incredible!", "surprised"),
        ("Ugh, that sounds disgusting.", "disgusted"),
        ("Hmm, let me think about that.", "thinking"),
        ("Je suis vraiment désolé, c'est triste.", "sad"),
        ("C'est génial, félicitations !", "happy"),
    ],
)
def test_scripted_replies_read_as_their_emotion(text: str, label: str) -> None:
    r = read(text)
    assert max(r.votes, key=lambda k: r.votes[k]) == label
    v, _a = POINTS[label]  # type: ignore[index]
    assert (r.valence > 0) == (v > 0) or v == 0
    assert r.evidence >= 1


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris.",
        "The deadline for the mission is Friday.",  # not "dead", not "miss"
        "Two plus two is four.",
        "A crystal of salt, and some ravioli.",  # not "cry", not "ravi"
        "The human body has many functions.",  # not "hum", not "fun"
    ],
)
def test_plain_text_has_no_evidence(text: str) -> None:
    assert read(text).evidence == 0


def test_negation_votes_for_nothing() -> None:
    negated = read("I am not happy about this.")
    assert negated.evidence == 0 and negated.valence < 0


def test_exclamations_raise_arousal() -> None:
    assert read("That is great!!").arousal > read("That is great.").arousal


def test_every_label_has_a_point_in_range() -> None:
    for label in LABELS:
        v, a = POINTS[label]
        assert -1 <= v <= 1 and -1 <= a <= 1


def test_the_label_follows_the_replies_with_hysteresis() -> None:
    t = AffectTracker()
    t.observe("That is wonderful news, congratulations!")
    assert t.current.label == "happy" and t.current.valence > 0.3
    # one mildly sad word among happy talk does not flip the face
    t.observe("Great job, I love it, that is fantastic!")
    t.observe("I miss the summer a little.")
    assert t.current.label == "happy"
    # a clearly sad reply does
    t.observe("Oh, I am so sorry. That is really sad, a terrible loss.")
    assert t.current.label == "sad" and t.current.valence < 0
    # plain talk lets it settle back to neutral, the point gliding home
    before = abs(t.current.valence)
    for _ in range(6):
        t.observe("The train leaves at ten and arrives at noon.")
    assert t.current.label == "neutral" and abs(t.current.valence) < before


def test_updates_are_rate_limited_and_held_back_changes_go_out_later() -> None:
    t = AffectTracker(min_interval_s=1.0)
    t.observe("That is wonderful!")
    first = t.due(0.0)
    assert first is not None and first.label == "happy"
    t.observe("Oh no, I am so sorry, that is so sad and painful.")
    assert t.due(0.4) is None  # too soon
    assert t.next_at() == pytest.approx(1.0)
    later = t.due(1.0)
    assert later is not None and later.label == "sad"
    assert t.due(5.0) is None and t.next_at() is None  # nothing new to say


def test_a_cue_sets_the_label_at_once() -> None:
    t = AffectTracker()
    t.observe("Great, wonderful, fantastic!")
    t.observe_cue("surprised")
    assert t.current.label == "surprised"


def test_temperament_moves_the_rest_point_and_the_gain() -> None:
    lively = AffectTracker(Bias(valence=0.1, arousal=0.3, gain=1.5))
    calm = AffectTracker(Bias(valence=0.1, arousal=-0.2, gain=0.6))
    assert lively.current.arousal == 0.3 and calm.current.arousal == -0.2
    for t in (lively, calm):
        t.observe("That is wonderful news!")
    assert lively.current.arousal > calm.current.arousal
    assert lively.current.valence > calm.current.valence


def test_cues_are_stripped_across_deltas_and_unknown_ones_dropped() -> None:
    f = CueFilter()
    out: list[str] = []
    cues: list[str] = []
    for delta in [
        "[emo",
        "tion: happy] That is ",
        "great! [x] and [emotion:Sad]so",
        "rry [emotion: bored] ok [unfinished",
    ]:
        text, found = f.feed(delta)
        out.append(text)
        cues.extend(found)
    out.append(f.flush())
    assert "".join(out) == "That is great! [x] and sorry ok [unfinished"
    assert cues == ["happy", "sad"] and f.unknown == ["bored"]


async def test_the_publisher_sends_sentences_heard_at_most_once_a_second() -> None:
    sent: list[dict[str, str]] = []
    arrived = asyncio.Event()

    async def set_attributes(attrs: dict[str, str]) -> None:
        sent.append(attrs)
        arrived.set()

    face = FacePublisher(set_attributes, AffectTracker(min_interval_s=0.3))
    face.cue("happy")
    face.heard("That is ")  # the cue applies with the first words heard
    face.heard("wonderful news! And ")
    await asyncio.wait_for(arrived.wait(), 2)
    arrived.clear()
    face.heard("oh no, I am so sorry, that is so sad. ")  # held back by the rate limit
    face.reply_ended()
    await asyncio.wait_for(arrived.wait(), 2)
    await face.close()
    assert [s[EMOTION_ATTRIBUTE] for s in sent] == ["happy", "sad"]
    points = [json.loads(s[AFFECT_ATTRIBUTE]) for s in sent]
    assert points[0]["valence"] > 0 > points[1]["valence"]
    assert points[1]["at"] - points[0]["at"] >= 0.3


async def test_a_failing_room_does_not_raise() -> None:
    tried: list[dict[str, str]] = []

    async def broken(attrs: dict[str, str]) -> None:
        tried.append(attrs)
        raise RuntimeError("room closed")

    face = FacePublisher(broken, AffectTracker())
    face.heard("That is wonderful! ")
    await face.close()  # waits for the send in flight, which swallowed the error
    assert tried
