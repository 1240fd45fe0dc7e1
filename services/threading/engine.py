"""Which ticket does a received message belong to? Pure decisions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from services.common.events import MessageReceived
from services.common.store import digest_key

LOOKUP_REFERENCES = 20  # the nearest References are enough to find a known ancestor


def candidates(msg: MessageReceived) -> list[str]:
    """Message-IDs worth looking up, nearest ancestor first."""
    ids = list(msg.in_reply_to) + list(reversed(msg.references[-LOOKUP_REFERENCES:]))
    return list(dict.fromkeys(i for i in ids if i != msg.message_id))


def locate(msg: MessageReceived, known: Mapping[str, str]) -> tuple[str | None, str]:
    """(ticket id, method) from headers, or (None, "new") when nothing known is named."""
    for mid in msg.in_reply_to:
        if mid in known:
            return known[mid], "in-reply-to"
    for mid in reversed(msg.references):
        if mid in known:
            return known[mid], "references"
    return None, "new"


def new_ticket_id(msg: MessageReceived) -> str:
    """Deterministic, so a redelivered message re-finds the ticket it opened."""
    return digest_key(msg.message_id)[:24]
