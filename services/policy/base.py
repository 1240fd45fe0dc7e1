"""The policy port: a pure function of (ticket, follow-up) -> decision."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from tidydesk.tickets.view import PastMessage as PastMessage  # the port's types
from tidydesk.tickets.view import TicketView as TicketView

Verdict = Literal["acknowledge", "reopen", "split", "auto"]  # auto: machine mail, no action


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


class Policy(Protocol):
    """A reopen / new-topic policy. Implementations must be pure and deterministic."""

    name: str
    version: str

    def decide(self, ticket: TicketView, message: FollowUp) -> Decision: ...
