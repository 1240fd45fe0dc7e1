"""Scripts of characters and the language a short text is most likely written in."""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

Script = Literal["hangul", "han", "kata", "hira", "word", ""]
Language = Literal["ko", "ja", "zh", "latin", "other", ""]


def is_hangul(c: str) -> bool:
    """A Hangul syllable, jamo or compatibility jamo."""
    o = ord(c)
    return 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F


def is_han(c: str) -> bool:
    """A CJK ideograph (or the iteration mark 々)."""
    o = ord(c)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF
            or 0x20000 <= o <= 0x2FFFF or c == "々")


def is_hiragana(c: str) -> bool:
    """A hiragana character."""
    return 0x3041 <= ord(c) <= 0x309F


def is_katakana(c: str) -> bool:
    """A katakana character (phonetic extensions included)."""
    o = ord(c)
    return 0x30A0 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF


def script(c: str) -> Script:
    """The script class of one character; "word" for other letters and digits, "" otherwise."""
    if is_hangul(c):
        return "hangul"
    if is_han(c):
        return "han"
    if is_katakana(c):
        return "kata"
    if is_hiragana(c):
        return "hira"
    if c.isalnum():
        return "word"
    return ""


def is_latin(c: str) -> bool:
    """A letter of the Latin script (ASCII, Latin-1, Latin Extended-A/B)."""
    return c.isalpha() and ord(c) < 0x250


def language(text: str) -> Language:
    """The language family a text is written in, from its letters: any Hangul is Korean, any
    kana Japanese, Han alone Chinese, mostly Latin letters "latin", mostly letters of another
    script (Cyrillic, Arabic, Thai ...) "other"; "" when the text has no letters."""
    counts = Counter(script(c) for c in text if not c.isdigit())
    if counts["hangul"]:
        return "ko"
    if counts["hira"] or counts["kata"]:
        return "ja"
    if counts["han"]:
        return "zh"
    if not counts["word"]:
        return ""
    latin = sum(is_latin(c) for c in text)
    return "latin" if 2 * latin >= counts["word"] else "other"


def language_code(text: str) -> str:
    """An ISO 639-1 code for a text: ko, ja, zh by script; for Latin text the language of
    `tidydesk.text.lexicon` whose function words it uses most (en on a tie or none); "" for
    text in no script the lexicons cover, or with no letters."""
    from tidydesk.text import lexicon, normalise

    family = language(text)
    if family != "latin":
        return family if family in lexicon.CJK else ""
    words = re.findall(r"[^\W\d_]+", normalise.normalize(text))
    hits = {code: sum(w in lexicon.language(code).function_words for w in words)
            for code in lexicon.LATIN}
    return max(lexicon.LATIN, key=lambda code: hits[code])  # max keeps the first (en) on ties
