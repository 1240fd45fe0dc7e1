"""The ticket commands (tidydesk.tickets.commands): pure handlers on a folded ticket, and
`execute` with its version check on the in-memory event store."""

from __future__ import annotations

import asyncio
from typing import get_args

import pytest

from tidydesk.common.events import (
    ConversationMoved,
    Event,
    MessageThreaded,
    ReplySent,
    TicketClosed,
    TicketOpened,
    TicketSolved,
    TicketTagged,
    TicketUntagged,
    envelope,
)
from tidydesk.common.memory import InMemoryEventStore, InMemoryIndex
from tidydesk.tickets import commands
from tidydesk.tickets.commands import (
    HANDLERS,
    Close,
    Command,
    Merge,
    Refused,
    Reply,
    Solve,
    Tag,
    TooLarge,
    Unmerge,
    Untag,
    VersionMismatch,
)
from tidydesk.tickets.ticket import Ticket, fold


def _fold(ticket_id: str, *events: Event) -> Ticket:
    return fold(ticket_id, [(seq, envelope(e, ticket_id, str(seq)))
                            for seq, e in enumerate(events, 1)])


def opened(ticket_id: str = "a", number: int = 7) -> TicketOpened:
    return TicketOpened(ticket_id=ticket_id, number=number, subject="Kettle",
                        requester="lee@example.com", mailbox="support@acme.example",
                        message_id=f"{ticket_id}-m0")


def _store(*tickets: tuple[str, list[Event]]) -> InMemoryEventStore:
    store = InMemoryEventStore()
    for ticket_id, events in tickets:
        asyncio.run(store.append(ticket_id, [(e, str(i)) for i, e in enumerate(events)], 0))
    return store


def test_every_command_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(get_args(Command))


def test_solve_and_close_are_idempotent_by_state() -> None:
    ticket = _fold("a", opened())
    ((event, key),) = commands.solve(ticket, Solve(agent="kim"))
    assert event == TicketSolved(ticket_id="a", agent="kim") and key == "solved@1"
    solved = _fold("a", opened(), TicketSolved(ticket_id="a"))
    assert commands.solve(solved, Solve()) == []
    ((event, _),) = commands.close(solved, Close())
    assert isinstance(event, TicketClosed)
    closed = _fold("a", opened(), TicketClosed(ticket_id="a"))
    assert commands.solve(closed, Solve()) == [] and commands.close(closed, Close()) == []


def test_tags_change_only_what_is_not_so_already() -> None:
    tagged = _fold("a", opened(), TicketTagged(ticket_id="a", tag="vip"))
    assert commands.tag(tagged, Tag(tag="vip")) == []
    ((event, key),) = commands.untag(tagged, Untag(tag="vip", agent="kim"))
    assert event == TicketUntagged(ticket_id="a", tag="vip", agent="kim") and key == "untag:vip@2"
    assert commands.untag(tagged, Untag(tag="billing")) == []
    assert commands.tag(Ticket(ticket_id="none"), Tag(tag="vip")) == []  # no ticket yet


def test_a_reply_names_the_ticket_number_and_a_retry_adds_nothing() -> None:
    ticket = _fold("a", opened(), MessageThreaded(ticket_id="a", message_id="a-m0",
                                                  method="new", sender="lee@example.com"))
    cmd = Reply(message_id="r1@acme.example", text="Try descaling.",
                reply_to="support+ta.x@acme.example", agent="kim")
    ((event, key),) = commands.reply(ticket, cmd)
    assert isinstance(event, ReplySent) and key == "r1@acme.example"
    assert (event.subject, event.to, event.in_reply_to) == (
        "Re: [#7] Kettle", "lee@example.com", "a-m0")
    answered = fold(ticket, [(3, envelope(event, "a", key))])
    assert commands.reply(answered, cmd) == []


def test_unmerge_refuses_a_conversation_threading_moved() -> None:
    assert commands.unmerge(_fold("a", opened()), Unmerge()) == []
    moved = _fold("a", opened(), ConversationMoved(ticket_id="a", into="b", message_ids=(),
                                                   reason="x"))
    with pytest.raises(Refused, match="moved by threading"):
        commands.unmerge(moved, Unmerge())


def test_execute_checks_the_version_only_when_something_changes() -> None:
    store = _store(("a", [opened()]))
    with pytest.raises(VersionMismatch) as refused:
        asyncio.run(commands.execute(store, "a", Solve(), expected={9}))
    assert refused.value.version == 1 and "not 9" in str(refused.value)
    done = asyncio.run(commands.execute(store, "a", Solve(agent="kim"), expected={1}))
    assert done.changed and done.events == [TicketSolved(ticket_id="a", agent="kim")]
    again = asyncio.run(commands.execute(store, "a", Solve(), expected={1}))  # stale, no-op
    assert not again.changed and again.ticket.status == "solved"


def test_execute_refuses_an_event_the_store_cannot_take() -> None:
    store = _store(("a", [opened()]))
    cmd = Reply(message_id="r@acme.example", text="x" * 600_000, reply_to="")
    with pytest.raises(TooLarge, match="the reply makes a"):
        asyncio.run(commands.execute(store, "a", cmd, index=InMemoryIndex()))
    assert asyncio.run(store.load("a")).version == 1


def test_a_merge_back_into_the_merged_ticket_is_a_refused_loop() -> None:
    store = _store(("a", [opened("a", 1)]), ("b", [opened("b", 2)]))
    assert asyncio.run(commands.execute(store, "a", Merge(into="b"))).changed
    assert not asyncio.run(commands.execute(store, "a", Merge(into="b"))).changed
    with pytest.raises(Refused, match="merging would make a loop"):
        asyncio.run(commands.execute(store, "b", Merge(into="a")))
    assert asyncio.run(store.load("b")).absorbing == {"a"}
