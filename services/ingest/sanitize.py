"""Text made safe once, at the edge: what PostgreSQL `text`/`jsonb`, JSON and consumers take.

`clean` removes NUL and the other C0 controls but tab and newline, DEL, the C1 controls and
the Unicode noncharacters; it replaces lone surrogates (invalid bytes decoded with
surrogateescape) with U+FFFD, and turns CR LF, CR, VT and FF into LF. Everything else
(every script, emoji, ZWJ, bidi marks) is kept. The raw bytes are kept elsewhere.
"""

from __future__ import annotations

import codecs
import re
from typing import TypeVar

import msgspec

__all__ = ["Tally", "clean", "scrub", "text_charset"]

S = TypeVar("S", bound=msgspec.Struct)

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
_REMOVED = re.compile(f"[\x00-\x08\x0e-\x1f\x7f-\x9f{_NONCHARACTERS}]+")
_SURROGATES = re.compile("[\ud800-\udfff]")
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]")
_NEWLINES = str.maketrans({"\r": "\n", "\x0b": "\n", "\x0c": "\n"})

# Text codecs that are not charsets: they interpret escapes (`\x00`, `+AAA-`) or are not
# meant for mail bodies. Non-text codecs (base64, rot13, zlib, hex …) are refused too.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "utf-7", "idna", "punycode",
                           "undefined"})


class Tally:
    """What `clean` took out, summed over the texts of one event."""

    def __init__(self) -> None:
        self.removed = 0
        self.replaced = 0

    def note(self) -> str:
        """E.g. "removed 3 control characters" ("" when nothing was taken out)."""
        notes = []
        if self.removed:
            notes.append(f"removed {self.removed} control characters")
        if self.replaced:
            notes.append(f"replaced {self.replaced} invalid characters with U+FFFD")
        return "; ".join(notes)


def clean(text: str, tally: Tally | None = None) -> str:
    """`text` without the characters PostgreSQL, JSON or a terminal should not get."""
    if not _UNSAFE.search(text):
        return text
    text = text.replace("\r\n", "\n").translate(_NEWLINES)
    before = len(text)
    text = _REMOVED.sub("", text)
    removed = before - len(text)
    text, replaced = _SURROGATES.subn("\ufffd", text)
    if tally is not None:
        tally.removed += removed
        tally.replaced += replaced
    return text


def _walk(value: object, tally: Tally) -> object:
    if isinstance(value, str):
        return clean(value, tally)
    if isinstance(value, tuple | list):
        return type(value)(_walk(v, tally) for v in value)
    if isinstance(value, msgspec.Struct):
        changes = {}
        for name in value.__struct_fields__:
            old = getattr(value, name)
            new = _walk(old, tally)
            if new != old:
                changes[name] = new
        return msgspec.structs.replace(value, **changes) if changes else value
    return value


def scrub(obj: S, tally: Tally | None = None) -> S:
    """`obj` with `clean` applied to every string in it: nested Structs, tuples and lists
    included, so a newly added field cannot be missed."""
    cleaned = _walk(obj, Tally() if tally is None else tally)
    assert isinstance(cleaned, type(obj))
    return cleaned


def text_charset(declared: str | None) -> str | None:
    """`declared` if bytes may be decoded with it, else None (then the usual fallbacks:
    utf-8, CJK, cp1252). Unknown names pass: `decode_bytes` aliases or falls back itself."""
    if declared is None:
        return None
    try:
        info = codecs.lookup(declared.strip().strip('"'))
    except LookupError:
        return declared
    except Exception:  # e.g. ValueError: embedded null character
        return None
    if not info._is_text_encoding or info.name in _NOT_CHARSETS:
        return None
    return declared
