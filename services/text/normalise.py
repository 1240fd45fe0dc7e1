"""Text normalisation: one place for NFKC, case and accent folding."""

from __future__ import annotations

import unicodedata

_FOLD = {
    c: unicodedata.normalize("NFKD", chr(c)).encode("ascii", "ignore").decode() or chr(c)
    for c in range(0xC0, 0x250)
}
_FOLD.update({ord("ß"): "ss", ord("æ"): "ae", ord("ø"): "o", ord("œ"): "oe", ord("đ"): "d"})
_FOLD.update({ord(q): "'" for q in "’‘`´ʼ"})
_FOLD.update({ord(q): '"' for q in "“”„«»"})

_PUNCT = str.maketrans({
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u301c": "~",
})


def fold(text: str) -> str:
    """NFKC, lower case, Latin accents folded (é -> e, ß -> ss), quotes unified."""
    return unicodedata.normalize("NFKC", text).lower().translate(_FOLD)


def normalize(text: str) -> str:
    """NFKC, lower case, typographic quotes and dashes unified; accents kept."""
    return unicodedata.normalize("NFKC", text).lower().translate(_PUNCT)


def strip_accents(word: str) -> str:
    """Strip diacritics (é -> e, ü -> u, ß -> ss) from one word."""
    d = unicodedata.normalize("NFKD", word.replace("ß", "ss"))
    return "".join(c for c in d if not unicodedata.combining(c))
