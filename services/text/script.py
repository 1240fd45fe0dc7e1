"""Scripts of characters and the language a short text is most likely written in."""

from __future__ import annotations

import functools
import re
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


# the script tests as compiled regular expressions: they scan in C, and a replay asks once per
# ticket.opened (a Python loop over the characters was a third of the projector's CPU)
_HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile("[\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff]")
_HAN = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002ffff\u3005]")
_LATIN_SET = "A-Za-z\u00aa\u00b5\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
_LATIN_RUN = re.compile(f"[{_LATIN_SET}]+")
_OTHER_RUN = re.compile(f"(?:(?![{_LATIN_SET}])[^\\W\\d_])+")  # letters of other scripts
_WORD = re.compile(r"[^\W\d_]+")
SAMPLE = 300  # characters language_code reads: the start of a text says its language


def language(text: str) -> Language:
    """The language family a text is written in, from its letters: any Hangul is Korean, any
    kana Japanese, Han alone Chinese, mostly Latin letters "latin", mostly letters of another
    script (Cyrillic, Arabic, Thai ...) "other"; "" when the text has no letters."""
    if _HANGUL.search(text):
        return "ko"
    if _KANA.search(text):
        return "ja"
    if _HAN.search(text):
        return "zh"
    if text.isascii():  # the common case, without counting
        return "latin" if _LATIN_RUN.search(text) else ""
    latin = sum(map(len, _LATIN_RUN.findall(text)))
    other = sum(map(len, _OTHER_RUN.findall(text)))
    if not latin + other:
        return ""
    return "latin" if latin >= other else "other"


@functools.cache
def _function_words() -> dict[str, tuple[str, ...]]:
    """Each Latin-script function word of the lexicons -> the languages that have it."""
    from tidydesk.text import lexicon

    found: dict[str, tuple[str, ...]] = {}
    for code in lexicon.LATIN:
        for word in lexicon.language(code).function_words:
            found[word] = (*found.get(word, ()), code)
    return found


def language_code(text: str) -> str:
    """An ISO 639-1 code for a text: ko, ja, zh by script; for Latin text the language of
    `tidydesk.text.lexicon` whose function words it uses most (en on a tie or none); "" for
    text in no script the lexicons cover, or with no letters."""
    from tidydesk.text import lexicon, normalise

    text = text[:SAMPLE]
    family = language(text)
    if family != "latin":
        return family if family in lexicon.CJK else ""
    words = _function_words()
    hits = dict.fromkeys(lexicon.LATIN, 0)
    for word in _WORD.findall(normalise.normalize(text)):
        for code in words.get(word, ()):
            hits[code] += 1
    return max(lexicon.LATIN, key=lambda code: hits[code])  # max keeps the first (en) on ties
