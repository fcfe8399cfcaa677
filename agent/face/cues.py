"""Inline emotion cues in LLM replies: ``[emotion: happy]`` anywhere in the text sets the face
and is never spoken nor shown. The LLM is told about them in the prompt (texts.py, `emotion`).

`CueFilter` works on a stream of deltas: a cue may arrive split across chunks, so text from an
opening bracket is held back until it is known not to be a cue (at most `_HOLD` characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.face.affect import LABELS, Label

_CUE = re.compile(r"\[\s*emotion\s*:\s*([a-zA-Z]+)\s*\]\s?", re.IGNORECASE)
_HOLD = 32  # longer than any cue: "[ emotion : surprised ]" is 23


@dataclass
class CueFilter:
    """Feed deltas, get the text to speak and the cues found; `flush` at the end of a reply."""

    _pending: str = ""
    unknown: list[str] = field(default_factory=list)  # cue words that are not labels

    def feed(self, delta: str) -> tuple[str, list[Label]]:
        text = self._pending + delta
        cues: list[Label] = []
        out: list[str] = []
        pos = 0
        for m in _CUE.finditer(text):
            out.append(text[pos : m.start()])
            word = m.group(1).lower()
            if word in LABELS:
                cues.append(word)
            else:
                self.unknown.append(word)
            pos = m.end()
        rest = text[pos:]
        cut = rest.rfind("[")
        if cut >= 0 and len(rest) - cut < _HOLD and "]" not in rest[cut:]:
            out.append(rest[:cut])
            self._pending = rest[cut:]
        else:
            out.append(rest)
            self._pending = ""
        return "".join(out), cues

    def flush(self) -> str:
        """What was held back, when the reply ends without closing it (not a cue after all)."""
        text, self._pending = self._pending, ""
        return text
