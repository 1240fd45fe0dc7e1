"""The ticket fold of merges, unmerges and held-message decisions (pure)."""

from __future__ import annotations

from tidydesk.common.events import (
    Event,
    HeldAccepted,
    HeldMoved,
    MergeAccepted,
    MessageHeld,
    MessageThreaded,
    TicketMerged,
    TicketOpened,
    TicketSolved,
    TicketUnmerged,
    envelope,
)
from tidydesk.tickets.ticket import Ticket, fold


def _fold(ticket_id: str, *events: Event) -> Ticket:
    return fold(ticket_id, [(seq, envelope(e, ticket_id, str(seq)))
                            for seq, e in enumerate(events, 1)])


OPENED = TicketOpened(ticket_id="a", number=1, subject="Kettle", requester="lee@example.com",
                      mailbox="support@acme.example", message_id="m0")


def test_unmerge_gives_back_the_status_the_merge_ended() -> None:
    a = _fold("a", OPENED, TicketSolved(ticket_id="a"), TicketMerged(ticket_id="a", into="b"))
    assert (a.status, a.merged_into, a.premerge) == ("merged", "b", "solved")
    a = fold(a, [(9, envelope(TicketUnmerged(ticket_id="a", from_ticket="b", status="solved"),
                              "a", "u"))])
    assert (a.status, a.merged_into, a.premerge) == ("solved", None, "")


def test_a_merge_accepted_is_remembered_and_a_held_decision_clears_the_hold() -> None:
    held = MessageHeld(ticket_id="a", message_id="m1", method="in-reply-to", reason="stranger",
                       sender="eve@evil.example")
    other = MessageHeld(ticket_id="a", message_id="m2", method="subject-number", reason="x")
    a = _fold("a", OPENED, held, other, MergeAccepted(ticket_id="a", from_ticket="c",
                                                      source_version=3),
              MessageThreaded(ticket_id="a", message_id="m1", method="in-reply-to",
                              sender="eve@evil.example"),
              HeldAccepted(ticket_id="a", message_id="m1"),
              HeldMoved(ticket_id="a", message_id="m2", into="d"))
    assert a.held == {} and a.absorbing == {"c"}
    assert "eve@evil.example" in a.customers() and a.has_message("m1")
    assert not a.has_message("m2")
    assert a.copy().absorbing is not a.absorbing
