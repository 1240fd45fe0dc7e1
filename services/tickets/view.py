"""The read model the services share: a ticket as a policy (and threading) sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from tidydesk.tickets.ticket import Ticket


class PastMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One earlier message of the ticket, already reduced to its newly written text."""

    author: Literal["customer", "agent"]
    text: str


class TicketView(msgspec.Struct, frozen=True, kw_only=True):
    """What a policy may know about the ticket a follow-up was threaded into."""

    subject: str
    status: str  # "open", "pending", "solved" or "closed"
    requester: str
    messages: tuple[PastMessage, ...] = ()
    closed_days_ago: float | None = None  # None while the ticket is open or unknown


def view(ticket: Ticket, message_id: str | None, at: datetime) -> TicketView:
    """The ticket as a policy sees it when `message_id` arrived (None: now, all of it)."""
    past: list[PastMessage] = []
    for m in ticket.messages:
        if m.message_id == message_id:
            break
        author: Literal["customer", "agent"] = (
            "customer" if m.sender == ticket.requester else "agent"
        )
        past.append(PastMessage(author=author, text=m.reply))
    closed = ticket.solved_at
    return TicketView(
        subject=ticket.subject, status=ticket.followups.get(message_id or "", ticket.status),
        requester=ticket.requester, messages=tuple(past),
        closed_days_ago=(at - closed).total_seconds() / 86400 if closed else None,
    )
