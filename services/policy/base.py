"""The policy port: a pure function of (ticket, follow-up) -> decision."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec

from tidydesk.common.ticket import Ticket

Verdict = Literal["acknowledge", "reopen", "split", "auto"]  # auto: machine mail, no action


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


class FollowUp(msgspec.Struct, frozen=True, kw_only=True):
    """The inbound message a policy decides about."""

    sender: str
    subject: str
    body: str  # full plain text as sent, quotes and signature included
    reply: str  # the newly written text (quotes, signature, forwards stripped)
    auto: bool = False  # auto-reply, bounce or bulk mail flagged by intake


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """A policy's verdict with the evidence a human can check."""

    verdict: Verdict
    confidence: float
    reasons: tuple[str, ...]
    policy: str
    version: str


def language(text: str) -> str:
    """Rough language of a reply by script: ko, ja, zh, or latin/other."""
    if any("\uac00" <= c <= "\ud7a3" for c in text):
        return "ko"
    if any("\u3040" <= c <= "\u30ff" for c in text):
        return "ja"
    if any("\u4e00" <= c <= "\u9fff" for c in text):
        return "zh"
    return "latin" if any(c.isalpha() for c in text) else "other"


class Policy(Protocol):
    """A reopen / new-topic policy. Implementations must be pure and deterministic."""

    name: str
    version: str

    def decide(self, ticket: TicketView, message: FollowUp) -> Decision: ...


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
