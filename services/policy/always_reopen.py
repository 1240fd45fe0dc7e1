"""Baseline policy: every customer reply reopens the ticket (Chatwoot / FreeScout behaviour)."""

from __future__ import annotations

from tidydesk.policy.base import Decision, FollowUp, TicketView


class AlwaysReopen:
    """Reopen on any human reply; auto-replies never reopen."""

    name = "always-reopen"
    version = "1"

    def decide(self, ticket: TicketView, message: FollowUp) -> Decision:
        if message.auto:
            return Decision(
                verdict="acknowledge",
                confidence=1.0,
                reasons=("auto-reply",),
                policy=self.name,
                version=self.version,
            )
        return Decision(
            verdict="reopen",
            confidence=1.0,
            reasons=("every customer reply reopens the ticket",),
            policy=self.name,
            version=self.version,
        )
