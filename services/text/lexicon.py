"""Per-language word lists and phrase tables, decoded once from ``data/*.json``.

Each ``data/<code>.json`` is one `Language`; ``data/ack.json`` holds the acknowledgement
detector's phrase tables per script (their Latin alternations interleave several languages),
``data/mail.json`` the header field names and closings that reply extraction looks for.
"""

from __future__ import annotations

import functools
from importlib import resources

import msgspec

LATIN = ("en", "de", "fr", "es")
CJK = ("ko", "ja", "zh")
CODES = LATIN + CJK  # also the order in which phrase lists are concatenated


class Markers(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thread-matching marker phrases (regular expressions over normalised text), by tier."""

    ref: tuple[str, ...] = ()  # refers to the earlier contact: a chaser, "as requested"
    weak: tuple[str, ...] = ()  # persistence or escalation: "still", "again"
    new: tuple[str, ...] = ()  # an explicitly different matter: "another question", "別件"
    wnew: tuple[str, ...] = ()  # a weaker hint of a new matter: "by the way"


class Language(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The word lists of one language."""

    code: str
    name: str
    function_words: frozenset[str] = frozenset()  # grammar words, never content
    generic_words: frozenset[str] = frozenset()  # support vocabulary: weak evidence of an issue
    topic_stopwords: frozenset[str] = frozenset()  # units the new-topic test ignores
    stop_bigrams: frozenset[str] = frozenset()  # character bigrams that are grammar or courtesy
    function_chars: str = ""  # Han characters that make a bigram grammar
    markers: Markers = Markers()


class AckTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One acknowledgement phrase table: category -> alternatives, per script."""

    latin: dict[str, tuple[str, ...]]
    cjk: dict[str, tuple[str, ...]]


class AckTables(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The acknowledgement detector's three phrase tables."""

    protected: AckTable
    signals: AckTable
    ack: AckTable
    filler: frozenset[str]  # Latin-script words that carry no content in a thanks clause


class Mail(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Mail-structure vocabulary of many languages (more than have a language file)."""

    header_fields: dict[str, tuple[str, ...]]  # "from" -> from, von, 보낸 사람, 差出人 ...
    closings: tuple[str, ...]  # valediction alternatives (regular expressions): regards, 감사합니다


def _data(name: str) -> bytes:
    return resources.files(__package__).joinpath("data", name).read_bytes()


@functools.cache
def language(code: str) -> Language:
    """The word lists of ``code`` (one of `CODES`)."""
    return msgspec.json.decode(_data(f"{code}.json"), type=Language)


def union(field: str, codes: tuple[str, ...] = CODES) -> frozenset[str]:
    """One word-list field of several languages, merged."""
    return frozenset().union(*(getattr(language(c), field) for c in codes))


@functools.cache
def ack_tables() -> AckTables:
    """The acknowledgement phrase tables."""
    return msgspec.json.decode(_data("ack.json"), type=AckTables)


@functools.cache
def mail() -> Mail:
    """Header field names and closings, for reply extraction."""
    return msgspec.json.decode(_data("mail.json"), type=Mail)
