"""Affect from words: a small lexicon reading of each piece of text, and a tracker that turns
readings into what the face shows, steadily.

Pure: no clock of its own (callers pass `now`), no I/O. The face contract (README, "Face"):
`kyutai.emotion` is one of `LABELS`; `kyutai.affect` carries the valence–arousal point, each in
[-1, 1]. Valence and arousal are the circumplex axes (Russell): angry and afraid sit close
together there, so the label comes from word evidence, and the point from all of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Label = Literal["neutral", "happy", "sad", "angry", "afraid", "surprised", "disgusted", "thinking"]
LABELS: tuple[Label, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "afraid",
    "surprised",
    "disgusted",
    "thinking",
)
Source = Literal["agent", "user", "cue"]

# Where each label sits on the valence–arousal plane: a renderer given only the label glides to
# this point; the tracker's point starts here when a cue names the label.
POINTS: dict[Label, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.75, 0.45),
    "sad": (-0.65, -0.45),
    "angry": (-0.7, 0.75),
    "afraid": (-0.6, 0.6),
    "surprised": (0.15, 0.85),
    "disgusted": (-0.75, 0.25),
    "thinking": (0.0, 0.15),
}

# Words that are evidence for a label, English and French (the catalogue's languages): whole
# words, `*` a prefix ("delight*" covers "delighted"), `_` a space in a phrase.
_LEXICON: dict[Label, str] = {
    "happy": "happy glad great wonderful fantastic excellent delight* love lovely loved awesome "
    "congratulation* yay hooray brilliant perfect enjoy* fun funny excited exciting well_done "
    "bravo génial heureux heureuse ravi ravie magnifique formidable félicitation* parfait "
    "chouette joie",
    "sad": "sad sadly sorry died death dead passed_away unfortunate* miss missed lost loss lonely "
    "cry crying cried grief heartbr* painful hard_time tough désolé désolée triste dommage "
    "malheureu* perdu chagrin mort morte décédé*",
    "angry": "angry furious outrag* unacceptable annoy* hate hated mad_at rage infuriat* "
    "en_colère furieux furieuse inacceptable agaç* énerv*",
    "afraid": "afraid scare* fear* frighten* worried worry worrying nervous anxious anxiety "
    "terrif* danger dangerous peur effray* inquiet inquiète anxieux anxieuse",
    "surprised": "wow whoa surpris* amazing incredible unbelievable astonish* no_way incroyable "
    "étonn* waouh ça_alors",
    "disgusted": "disgust* gross yuck eww revolting nasty vile dégoût* beurk répugn* dégueu*",
    "thinking": "hmm let_me_think let_me_see perhaps maybe i_wonder voyons réfléch* peut-être hum",
}
_WORDS: dict[Label, tuple[str, ...]] = {
    label: tuple(w.replace("_", " ") for w in words.split()) for label, words in _LEXICON.items()
}
_NEGATIONS = frozenset({"not", "no", "never", "hardly", "pas", "jamais", "ni"})
_TOKEN = re.compile(r"[\w'’-]+[?!]?|[!?]", re.UNICODE)
# How much one source's evidence counts: the agent's own words drive its face; the user's words
# tint it (empathy: bad news makes it sad too); a cue from the LLM is taken as given.
_SOURCE_WEIGHT: dict[Source, float] = {"agent": 1.0, "user": 0.4, "cue": 3.0}


@dataclass(frozen=True)
class Reading:
    """What one piece of text says: label votes, and a valence–arousal nudge."""

    votes: dict[Label, float]
    valence: float
    arousal: float

    @property
    def evidence(self) -> float:
        return sum(self.votes.values())


def read(text: str) -> Reading:
    """Votes per label (a negated word votes for nothing but lowers valence a little) and the
    valence–arousal mean of the words found; exclamations raise arousal."""
    lowered = text.lower().replace("’", "'")
    tokens = _TOKEN.findall(lowered)
    joined = " ".join(tokens)
    votes: dict[Label, float] = {}
    vs: list[float] = []
    ar: list[float] = []
    for label, stems in _WORDS.items():
        for stem in stems:
            if " " in stem:
                pattern = rf"(?<![\w'-]){re.escape(stem)}(?![\w'-])"
                positions = [joined[: m.start()].count(" ") for m in re.finditer(pattern, joined)]
            elif stem.endswith("*"):
                positions = [i for i, t in enumerate(tokens) if t.startswith(stem[:-1])]
            else:
                positions = [i for i, t in enumerate(tokens) if t.rstrip("?!") == stem]
            for pos in positions:
                v, a = POINTS[label]
                if any(t in _NEGATIONS or t.endswith("n't") for t in tokens[max(0, pos - 3) : pos]):
                    vs.append(-0.4 * v)
                    ar.append(0.3 * a)
                    continue
                votes[label] = votes.get(label, 0.0) + 1.0
                vs.append(v)
                ar.append(a)
    bangs = min(3, lowered.count("!"))
    valence = sum(vs) / len(vs) if vs else 0.0
    arousal = (sum(ar) / len(ar) if ar else 0.0) + 0.15 * bangs
    return Reading(votes, _clip(valence), _clip(arousal))


@dataclass(frozen=True)
class Bias:
    """A character's temperament: where its face rests, and how far words move it."""

    valence: float = 0.0
    arousal: float = 0.0
    gain: float = 1.0


@dataclass(frozen=True)
class Affect:
    label: Label
    valence: float
    arousal: float


@dataclass
class AffectTracker:
    """Readings in, a steady affect out: label hysteresis, a point that glides, updates at most
    every `min_interval_s`.

    Observe whole sentences. Label votes fade by `decay` per observation and are capped at
    `cap` (a long happy stretch must not make the face deaf to bad news); a new label takes over
    only when its score beats the shown one's by `margin`, and the face falls back to neutral
    when all scores fade under `floor`. The point moves `pull` of the way to each reading
    (more with more evidence) and drifts back to the character's rest point on plain text.
    """

    bias: Bias = field(default_factory=Bias)
    min_interval_s: float = 1.0
    decay: float = 0.6
    margin: float = 0.25
    floor: float = 0.35
    cap: float = 2.0
    pull: float = 0.45
    settle: float = 0.2
    min_move: float = 0.05
    _scores: dict[Label, float] = field(default_factory=dict)
    _label: Label = "neutral"
    _point: tuple[float, float] | None = None
    _published: Affect | None = None
    _published_at: float | None = None

    @property
    def rest(self) -> tuple[float, float]:
        return (_clip(self.bias.valence), _clip(self.bias.arousal))

    @property
    def current(self) -> Affect:
        v, a = self._point if self._point is not None else self.rest
        return Affect(self._label, round(v, 2), round(a, 2))

    def observe(self, text: str, source: Source = "agent") -> None:
        self.observe_reading(read(text), source)

    def observe_cue(self, label: Label) -> None:
        """An inline cue from the LLM: that label, at once (still subject to the rate limit)."""
        v, a = POINTS[label]
        self.observe_reading(Reading({label: 1.0}, v, a), "cue")

    def observe_reading(self, reading: Reading, source: Source) -> None:
        weight = _SOURCE_WEIGHT[source]
        for label in list(self._scores):
            self._scores[label] *= self.decay
        for label, n in reading.votes.items():
            self._scores[label] = min(self.cap, self._scores.get(label, 0.0) + n * weight)
        self._relabel(forced=source == "cue")
        v, a = self._point if self._point is not None else self.rest
        rv, ra = self.rest
        if reading.evidence > 0 or reading.arousal:
            k = min(1.0, self.pull * weight * max(1.0, reading.evidence))
            tv = _clip(rv + self.bias.gain * reading.valence)
            ta = _clip(ra + self.bias.gain * reading.arousal)
        else:
            k, tv, ta = self.settle, rv, ra
        self._point = (v + k * (tv - v), a + k * (ta - a))

    def _relabel(self, *, forced: bool) -> None:
        best = max(self._scores, key=lambda lb: self._scores[lb], default=None)
        shown = self._scores.get(self._label, 0.0) if self._label != "neutral" else self.floor
        if best is None or self._scores[best] < self.floor:
            self._label = "neutral"
        elif best != self._label and (forced or self._scores[best] >= shown + self.margin):
            self._label = best

    def _changed(self) -> bool:
        cur, last = self.current, self._published
        if last is None or cur.label != last.label:
            return True
        return abs(cur.valence - last.valence) + abs(cur.arousal - last.arousal) >= self.min_move

    def due(self, now: float) -> Affect | None:
        """The affect to publish now, if it changed enough and the last one is old enough."""
        if not self._changed():
            return None
        if self._published_at is not None and now - self._published_at < self.min_interval_s:
            return None
        self._published, self._published_at = self.current, now
        return self._published

    def next_at(self) -> float | None:
        """When a change held back by the rate limit may go out (None: nothing held back)."""
        if self._published_at is None or not self._changed():
            return None
        return self._published_at + self.min_interval_s


def _clip(x: float) -> float:
    return max(-1.0, min(1.0, x))
