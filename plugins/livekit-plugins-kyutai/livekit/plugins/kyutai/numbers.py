"""Numbers as spoken words in English and French (cardinals, ordinals, decimals). Pure functions."""

from __future__ import annotations

_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))

_FR_ONES = (
    "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze "
    "seize dix-sept dix-huit dix-neuf"
).split()
_FR_TENS = "_ _ vingt trente quarante cinquante soixante".split()

# Past this the reading is digit by digit: nobody says these aloud as one number.
MAX_CARDINAL = 10**15 - 1


def _en_below_1000(n: int) -> str:
    parts: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        parts.append(f"{_EN_ONES[hundreds]} hundred")
    if rest:
        if rest < 20:
            parts.append(_EN_ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            parts.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    return " ".join(parts)


def en_cardinal(n: int) -> str:
    if n < 0:
        return "minus " + en_cardinal(-n)
    if n > MAX_CARDINAL:
        return digits(n, "en")
    if n < 1000:
        return _en_below_1000(n) if n else "zero"
    parts: list[str] = []
    for scale, name in _EN_SCALES:
        count, n = divmod(n, scale)
        if count:
            parts.append(f"{_en_below_1000(count)} {name}")
    if n:
        parts.append(_en_below_1000(n))
    return " ".join(parts)


_EN_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def en_ordinal(n: int) -> str:
    words = en_cardinal(n)
    head, sep, last = words.rpartition(" ")
    pre, dash, unit = last.rpartition("-")
    if unit in _EN_ORDINAL_IRREGULAR:
        unit = _EN_ORDINAL_IRREGULAR[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return head + sep + pre + dash + unit


def _fr_below_100(n: int) -> str:
    if n < 20:
        return _FR_ONES[n]
    tens, ones = divmod(n, 10)
    if tens in (7, 9):  # soixante-dix…, quatre-vingt-dix…: count on from ten
        base = "soixante" if tens == 7 else "quatre-vingt"
        if tens == 7 and ones == 1:
            return "soixante et onze"
        return f"{base}-{_FR_ONES[10 + ones]}"
    if tens == 8:
        return "quatre-vingts" if ones == 0 else f"quatre-vingt-{_FR_ONES[ones]}"
    base = _FR_TENS[tens]
    if ones == 0:
        return base
    if ones == 1:
        return f"{base} et un"
    return f"{base}-{_FR_ONES[ones]}"


def _fr_below_1000(n: int, *, plural_ok: bool) -> str:
    """``plural_ok`` is False before "mille", where cents/vingts stay invariable."""
    hundreds, rest = divmod(n, 100)
    parts: list[str] = []
    if hundreds:
        if hundreds == 1:
            parts.append("cent")
        else:
            parts.append(f"{_FR_ONES[hundreds]} cent" + ("s" if not rest and plural_ok else ""))
    if rest:
        words = _fr_below_100(rest)
        if not plural_ok and words.endswith("quatre-vingts"):
            words = words[:-1]
        parts.append(words)
    return " ".join(parts)


def fr_cardinal(n: int) -> str:
    if n < 0:
        return "moins " + fr_cardinal(-n)
    if n > MAX_CARDINAL:
        return digits(n, "fr")
    if n == 0:
        return "zéro"
    parts: list[str] = []
    for scale, name in ((10**12, "billion"), (10**9, "milliard"), (10**6, "million")):
        count, n = divmod(n, scale)
        if count:
            # million and milliard are nouns: "deux millions", "quatre-vingts millions"
            noun = name + ("s" if count > 1 else "")
            parts.append(f"{_fr_below_1000(count, plural_ok=True)} {noun}")
    thousands, n = divmod(n, 1000)
    if thousands:
        parts.append(
            "mille" if thousands == 1 else f"{_fr_below_1000(thousands, plural_ok=False)} mille"
        )
    if n:
        parts.append(_fr_below_1000(n, plural_ok=True))
    return " ".join(parts)


def fr_ordinal(n: int, *, feminine: bool = False) -> str:
    if n == 1:
        return "première" if feminine else "premier"
    words = fr_cardinal(n)
    if words.endswith(("cents", "vingts", "millions", "milliards", "billions")):
        words = words[:-1]
    if words.endswith("cinq"):
        return words + "uième"
    if words.endswith("neuf"):
        return words[:-1] + "vième"
    if words.endswith("e"):
        words = words[:-1]
    return words + "ième"


def cardinal(n: int, language: str) -> str:
    return fr_cardinal(n) if language == "fr" else en_cardinal(n)


def ordinal(n: int, language: str) -> str:
    return fr_ordinal(n) if language == "fr" else en_ordinal(n)


def digits(value: int | str, language: str) -> str:
    """Read each digit: phone numbers, long codes, decimals."""
    ones = _FR_ONES if language == "fr" else _EN_ONES
    return " ".join(ones[int(c)] for c in str(value) if c.isdigit())


def decimal(integer: str, fraction: str, language: str) -> str:
    """``integer``/``fraction`` are digit strings, e.g. "3" and "14"."""
    whole = cardinal(int(integer or "0"), language)
    if language == "fr":
        # French reads the fraction as a number after its leading zeros: 3,05 → trois virgule
        # zéro cinq; long fractions digit by digit.
        stripped = fraction.lstrip("0")
        zeros = len(fraction) - len(stripped)
        if stripped and len(stripped) <= 3:
            frac = " ".join(["zéro"] * zeros + [fr_cardinal(int(stripped))])
        else:
            frac = digits(fraction, "fr")
        return f"{whole} virgule {frac}"
    return f"{whole} point {digits(fraction, 'en')}"
