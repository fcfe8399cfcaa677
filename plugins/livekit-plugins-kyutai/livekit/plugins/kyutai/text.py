"""Text for the TTS: LLM output re-chunked into whole words and normalised for speech.

Pure functions and a small stateful chunker, no I/O. The TTS model reads text literally, so
markdown, emoji, URLs, symbols and digits are rewritten into the words a person would say, in the
voice's language (English or French).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import numbers

# Only these split words: no-break spaces (U+00A0, U+202F) stay inside a word, so "1 000" written
# with French typography remains one number.
_SPACE = " \t\n\r\f\v"

# A word ending with one of these is complete: release it at once instead of waiting for the
# next piece to bring a space.
_CLOSING = ".,!?;:…)]\"'»”’"

_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, symbols & pictographs ext.
    "\U00002600-\U000027bf"  # misc symbols, dingbats
    "\U00002b00-\U00002bff"  # arrows, stars
    "\U0001f1e6-\U0001f1ff"  # flags
    "\U0000fe00-\U0000fe0f"  # variation selectors
    "\U0000200d"  # zero-width joiner
    "\U000020e3"  # combining keycap
    "\U000e0020-\U000e007f"  # tag characters
    "]+"
)

_URL = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*://)?(?P<host>(?:www\.)?(?:[a-z0-9-]+\.)+"
    r"(?:com|org|net|io|ai|dev|fr|eu|uk|de|co|edu|gov|info|app|me|tv|ly|gg|xyz))"
    r"(?P<path>/\S*)?$",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"^([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)$")

# Leading/trailing punctuation kept around a normalised core (it shapes the prosody).
_EDGE = re.compile(r"^(?P<lead>[\"'“‘«(¿¡]*)(?P<core>.*?)(?P<trail>[.,!?;:…\"'”’»)]*)$", re.S)

_SYMBOLS: dict[str, dict[str, str]] = {
    "en": {
        "&": "and",
        "+": "plus",
        "=": "equals",
        "@": "at",
        "%": "percent",
        "°": "degrees",
        "×": "times",
        "÷": "divided by",
        "~": "about",
        "≈": "about",
        "<": "less than",
        ">": "greater than",
        "#": "number",
        "/": "slash",
        "*": "times",
    },
    "fr": {
        "&": "et",
        "+": "plus",
        "=": "égale",
        "@": "arobase",
        "%": "pour cent",
        "°": "degrés",
        "×": "fois",
        "÷": "divisé par",
        "~": "environ",
        "≈": "environ",
        "<": "inférieur à",
        ">": "supérieur à",
        "#": "numéro",
        "/": "barre oblique",
        "*": "fois",
    },
}

_CURRENCIES: dict[str, tuple[str, str, str, str]] = {
    # symbol: (en singular, en plural, fr singular, fr plural)
    "$": ("dollar", "dollars", "dollar", "dollars"),
    "€": ("euro", "euros", "euro", "euros"),
    "£": ("pound", "pounds", "livre", "livres"),
    "¥": ("yen", "yen", "yen", "yens"),
}

_DOT = {"en": "dot", "fr": "point"}
_AT = {"en": "at", "fr": "arobase"}

_NUMBER = re.compile(
    r"(?<![\w.,])"
    r"(?P<cur1>[$€£¥])?"
    r"(?P<sign>[-−])?"
    r"(?P<int>\d{1,3}(?:(?P<sep>[,.\u00a0\u202f ])\d{3})+|\d+)"
    r"(?:(?P<dec>[.,])(?P<frac>\d+))?"
    r"(?P<suffix>st|nd|rd|th|er|re|ère|ème|e|è|%|\s?[$€£¥])?"
    r"(?!\d)",
    re.IGNORECASE,
)
_RANGE = re.compile(r"^(\d+)[-–](\d+)$")
_TIME = re.compile(r"^(?P<h>[01]?\d|2[0-3])(?::|h)(?P<m>[0-5]\d)$", re.IGNORECASE)

# markdown emphasis/code runs at the edge of a word ("**bold**.", "`code`"), not inside one
_MD_STRIP = re.compile(r"(?<!\w)[*_~`]+|[*_~`]+(?!\w)|`")
_LINK_TAIL = re.compile(r"\]\([^)]*\)?")
# A dash alone ("one – two") is punctuation: Kyutai's servers drop it, so sent as a word it would
# get no timing of its own and shift every later word's.
_DASHES = "–—―‒"
_ONLY_MARKUP = re.compile(rf"^(?:[-*•#>|_~`:{_DASHES}]+|={{2,}})$")


@dataclass
class WordChunker:
    """Re-chunks streamed text pieces into whole words, released as soon as they are complete.

    A word is complete when whitespace follows it, when it ends with closing punctuation (no
    need to wait for the next piece), or at the end of the segment (``flush``). Two kinds of
    words are held back despite their punctuation because the next piece usually continues
    them: a number followed by "." or "," (3. → 3.14) and a URL or e-mail address.
    """

    _buf: str = field(default="", init=False)

    def push(self, piece: str) -> list[str]:
        self._buf += piece
        parts = _split(self._buf)
        if not parts:
            self._buf = self._buf if not self._buf.strip(_SPACE) else ""
            return []
        if self._buf[-1] in _SPACE:
            self._buf = ""
            return parts
        last = parts[-1]
        if _complete(last):
            self._buf = ""
            return parts
        self._buf = last
        return parts[:-1]

    def flush(self) -> list[str]:
        parts = _split(self._buf)
        self._buf = ""
        return parts


def _split(text: str) -> list[str]:
    return [w for w in re.split(f"[{re.escape(_SPACE)}]+", text) if w]


def _complete(word: str) -> bool:
    if word[-1] not in _CLOSING:
        return False
    if re.search(r"\d[.,]$", word):
        return False  # maybe a decimal or a thousands separator
    lowered = word.lower()
    return not ("://" in lowered or lowered.startswith("www.") or "@" in lowered)


def language_of_voice(voice: str) -> str:
    """Kyutai's voice repository files French voices under a ``/fr/`` folder."""
    v = voice.lower()
    return "fr" if "/fr/" in v or v.startswith("fr/") or "_fr_" in v else "en"


def clean_display(word: str) -> str:
    """The word as a transcript shows it: markdown and emoji removed, digits kept."""
    w = _EMOJI.sub("", word)
    if not w or _ONLY_MARKUP.match(w):
        return ""
    w = _LINK_TAIL.sub("", w)
    w = w.lstrip("[").replace("](", " ")
    w = _MD_STRIP.sub("", w)
    w = re.sub(r"^[#>]+(?!\d)", "", w)
    return w.strip()


def normalize_word(word: str, language: str = "en") -> str:
    """One chunked word → what the TTS should read (zero, one or several words)."""
    lang = "fr" if language.startswith("fr") else "en"
    w = clean_display(word)
    if not w:
        return ""
    w = w.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    m = _EDGE.match(w)
    assert m is not None  # the pattern matches any string
    lead, core, trail = m.group("lead"), m.group("core"), m.group("trail")
    lead = lead.replace("(", "")
    trail = trail.replace(")", "")
    if not core:
        # punctuation alone: nothing to say (a trailing "." of "..." tokens)
        return ""
    spoken = _normalize_core(core, lang)
    spoken = " ".join(spoken.split())
    if not spoken:
        return ""
    return f"{lead}{spoken}{trail}"


def normalize_text(text: str, language: str = "en") -> str:
    """Whole-text convenience: chunk then normalise every word."""
    out = (normalize_word(w, language) for w in _split(text))
    return " ".join(w for w in out if w)


def _normalize_core(core: str, lang: str) -> str:
    if email := _EMAIL.match(core):
        user, host = email.groups()
        return f"{_spell_host(user, lang)} {_AT[lang]} {_spell_host(host, lang)}"
    if url := _URL.match(core):
        return _spell_host(re.sub(r"^www\.", "", url.group("host"), flags=re.I), lang)
    if time_m := _TIME.match(core):
        return _time(int(time_m.group("h")), int(time_m.group("m")), lang)
    if core.isalpha():
        return core
    if span := _RANGE.match(core):
        to = " à " if lang == "fr" else " to "
        return to.join(_NUMBER.sub(lambda m: _number(m, lang), span.group(i)) for i in (1, 2))
    out = _NUMBER.sub(lambda m: f" {_number(m, lang)} ", core)
    # symbols left between words: "rock&roll" → "rock and roll", "and/or" → "and or"
    result: list[str] = []
    for ch in out:
        if ch in "/" and result and result[-1].isalpha():
            result.append(" ")
        elif ch in _SYMBOLS[lang]:
            result.append(f" {_SYMBOLS[lang][ch]} ")
        elif ch in _CURRENCIES:
            result.append(" " + _CURRENCIES[ch][3 if lang == "fr" else 1] + " ")
        elif ch in "()[]{}|\\^" or ch in _DASHES:
            result.append(" ")
        elif ch == "_":
            result.append(" ")
        else:
            result.append(ch)
    return "".join(result)


def _spell_host(host: str, lang: str) -> str:
    return f" {_DOT[lang]} ".join(p for p in host.split(".") if p)


def _time(h: int, m: int, lang: str) -> str:
    if lang == "fr":
        hours = "une heure" if h == 1 else f"{numbers.fr_cardinal(h)} heures"
        return hours if m == 0 else f"{hours} {numbers.fr_cardinal(m)}"
    if m == 0:
        return f"{numbers.en_cardinal(h)} o'clock"
    minutes = f"oh {numbers.en_cardinal(m)}" if m < 10 else numbers.en_cardinal(m)
    return f"{numbers.en_cardinal(h)} {minutes}"


def _number(m: re.Match[str], lang: str) -> str:
    integer = m.group("int")
    sep = m.group("sep")
    dec, frac = m.group("dec"), m.group("frac")
    suffix = (m.group("suffix") or "").strip().lower()
    cur = m.group("cur1") or (suffix if suffix in _CURRENCIES else None)

    if sep is not None:
        # "1,000" is a thousands separator in English, "1.000" / "1 000" in French; a lone
        # group like "3,14" in French is a decimal
        digits_only = re.sub(r"\D", "", integer)
        if lang == "fr" and sep == "," and dec is None and integer.count(",") == 1:
            head, tail = integer.split(",")
            integer, dec, frac = head, ",", tail
        elif lang == "en" and sep == "." and dec is None and integer.count(".") == 1:
            head, tail = integer.split(".")
            integer, dec, frac = head, ".", tail
        else:
            integer = digits_only
    if len(integer) > 1 and integer.startswith("0") and not dec:
        words = numbers.digits(integer, lang)  # codes and phone numbers keep their zeros
    elif suffix in ("st", "nd", "rd", "th") and lang == "en" and not dec:
        words = numbers.en_ordinal(int(integer))
    elif suffix in ("er", "re", "ère", "ème", "e", "è") and lang == "fr" and not dec:
        words = numbers.fr_ordinal(int(integer), feminine=suffix in ("re", "ère"))
    elif dec and frac:
        if cur:
            words = numbers.cardinal(int(integer), lang)
        else:
            words = numbers.decimal(integer, frac, lang)
    else:
        words = numbers.cardinal(int(integer), lang)

    if m.group("sign"):
        words = ("moins " if lang == "fr" else "minus ") + words
    if cur:
        en_one, en_many, fr_one, fr_many = _CURRENCIES[cur]
        one = int(integer) == 1 and not (dec and frac and int(frac))
        name = (fr_one if one else fr_many) if lang == "fr" else (en_one if one else en_many)
        words = f"{words} {name}"
        if dec and frac and int(frac):
            words += " " + numbers.cardinal(int(frac.ljust(2, "0")[:2]), lang)
    if suffix == "%":
        words += " pour cent" if lang == "fr" else " percent"
    return words


@dataclass(frozen=True)
class AlignedWord:
    text: str
    start_time: float | None
    end_time: float | None


@dataclass
class TranscriptAligner:
    """Pairs the words the TTS speaks (normalised, e.g. "twenty percent") with the words the
    transcript should show ("20%"), so the listener sees what the LLM wrote, timed by the audio.

    ``expect`` is called per word sent, with how many whitespace tokens it was spoken as; the
    server answers one timed ``Text`` per token, in order.
    """

    _groups: list[tuple[str, int]] = field(default_factory=list, init=False)
    _seen: int = field(default=0, init=False)  # tokens of the current group already spoken
    _start: float | None = field(default=None, init=False)
    _last_stop: float | None = field(default=None, init=False)

    def expect(self, display: str, n_tokens: int) -> None:
        if n_tokens > 0:
            self._groups.append((display, n_tokens))

    def on_spoken(self, text: str, start: float, stop: float) -> list[AlignedWord]:
        out: list[AlignedWord] = []
        for _ in text.split():  # the first Text is often empty: no token, nothing to align
            if not self._groups:
                break
            if self._seen == 0:
                self._start = start
            self._seen += 1
            self._last_stop = stop
            display, n = self._groups[0]
            if self._seen >= n:
                self._groups.pop(0)
                self._seen = 0
                out.append(AlignedWord(display, self._start, stop))
        return out

    def flush(self) -> list[AlignedWord]:
        """Words never confirmed by the server (it was cut short): keep their text, untimed
        except the first if it was partly spoken."""
        out: list[AlignedWord] = []
        for i, (display, _) in enumerate(self._groups):
            partial = i == 0 and self._seen > 0
            out.append(
                AlignedWord(
                    display,
                    self._start if partial else None,
                    self._last_stop if partial else None,
                )
            )
        self._groups.clear()
        self._seen = 0
        return out
