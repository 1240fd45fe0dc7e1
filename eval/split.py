"""Fixed dev / held-out split of an evaluation set, keyed on each item's id.

An item is *held out* when the first 8 hex digits of SHA-256(id), read as an integer, are
divisible by 5 (about 20% of every set). The rule depends on the id alone, so it never changes
when a file is re-ordered or extended. Rules are developed on the dev part only; the held-out
part is measured, never read for errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

HELD_OUT_MODULUS = 5


def is_held_out(item_id: str) -> bool:
    """True when the item with this id belongs to the held-out part."""
    digest = hashlib.sha256(item_id.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % HELD_OUT_MODULUS == 0


def split(rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(dev, held_out) parts of rows that carry an ``id``."""
    dev: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for row in rows:
        (held if is_held_out(str(row["id"])) else dev).append(row)
    return dev, held
