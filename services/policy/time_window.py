"""Helpdesk-classic policy (Zendesk / Zammad / RT style): the elapsed time alone decides.

A reply within `days` of the ticket being solved reopens it; a later reply becomes a new
ticket linked to the old one. The default of 30 days is one billing cycle: refunds, chargebacks
and repair returns routinely take 2-4 weeks, so "the refund never arrived" replies land within a
month, whereas Zendesk's 4-day solved->closed default would split those. Content is never read,
so this policy never acknowledges a human reply.
"""

from __future__ import annotations

from tidydesk.policy.base import Decision, FollowUp, TicketView, Verdict

DEFAULT_DAYS = 30.0


class TimeWindow:
    """Reopen within the window, split after it."""

    name = "time-window"
    version = "1"

    def __init__(self, days: float = DEFAULT_DAYS) -> None:
        if days < 0:
            raise ValueError("days must be >= 0")
        self.days = days

    def _decision(self, verdict: Verdict, confidence: float, reason: str) -> Decision:
        return Decision(
            verdict=verdict,
            confidence=confidence,
            reasons=(reason,),
            policy=self.name,
            version=self.version,
        )

    def decide(self, ticket: TicketView, message: FollowUp) -> Decision:
        if message.auto:
            return self._decision("acknowledge", 1.0, "auto-reply")
        age = ticket.closed_days_ago
        if age is None:
            return self._decision("reopen", 0.5, "close time unknown: reopen")
        if age > self.days:
            return self._decision(
                "split", 0.6, f"reply {age:g} days after close, window is {self.days:g} days"
            )
        return self._decision(
            "reopen", 0.6, f"reply {age:g} days after close, within the {self.days:g}-day window"
        )
