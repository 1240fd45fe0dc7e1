"""Where a ticket's conversation continues: merges (an agent's) and moves (threading's,
when replies arrived before their parent) chain tickets; the live ticket is the end."""

from __future__ import annotations

import msgspec

from tidydesk.common.events import (
    ConversationAdopted,
    Event,
    MergeAccepted,
    MessageHeld,
    MessageThreaded,
)
from tidydesk.common.store import Conflict, EventStore, Index, link, message_key
from tidydesk.tickets.mailbox import tenant
from tidydesk.tickets.ticket import Ticket

MAX_HOPS = 10  # merges/moves followed before giving up


async def merge_at(store: EventStore, source: Ticket, target: Ticket,
                   items: list[tuple[Event, str]], agent: str = "") -> None:
    """Record that `source` continues in `target` (`items`: its `ticket.merged` or
    `conversation.moved`) so that merges at once never close a loop: `merge_accepted` on
    the unmerged target at the version read, then `items` on the source at the version read
    before that. A ticket thus changes between its read and its merge only by a conflict,
    and of merges closing a loop (A->B, B->A; A->B->C->A) one always conflicts and looks
    again. Conflict when either ticket changed meanwhile or the target is merged."""
    if target.merged_into is not None:
        raise Conflict(target.ticket_id)
    await store.append(target.ticket_id, [(MergeAccepted(
        ticket_id=target.ticket_id, from_ticket=source.ticket_id, source_version=source.version,
        agent=agent), f"accept:{source.ticket_id}@{source.version}")], target.version)
    await store.append(source.ticket_id, items, source.version)


async def path(store: EventStore, index: Index, ticket_id: str) -> list[Ticket]:
    """`ticket_id` and the tickets it was merged or moved into, the live one last."""
    tickets = [await store.load(ticket_id)]
    for _ in range(MAX_HOPS):
        ticket = tickets[-1]
        if ticket.merged_into is None:
            break
        if ticket.moved:
            await adopt(store, index, ticket)  # finish a move a crash interrupted
        tickets.append(await store.load(ticket.merged_into))
    return tickets


async def live(store: EventStore, index: Index, ticket_id: str) -> str:
    """The ticket a (possibly merged or moved) ticket's conversation continues in."""
    return (await path(store, index, ticket_id))[-1].ticket_id


async def adopt(store: EventStore, index: Index, source: Ticket) -> None:
    """Carry a moved ticket's messages into the live ticket it moved to (idempotent)."""
    assert source.merged_into is not None
    target, onward = source.merged_into, ""

    def decide(ticket: Ticket) -> list[tuple[Event, str]]:
        nonlocal onward
        onward = ""
        if source.ticket_id in ticket.adopted or source.ticket_id == target:
            return []  # adopted already (and carried on with the target if it moved)
        onward = ticket.merged_into or ""
        if onward:
            return []
        known = (ticket.customers() | ticket.agents) - ticket.support_addresses()
        ok = [m for m in source.messages if m.method == "reply.sent" or
              m.sender.lower() in known]
        held = [*source.held.values(), *(MessageHeld(
            **msgspec.structs.asdict(m), reason=f"moved from ticket {source.ticket_id}: "
            f"{m.sender} is not a participant of #{ticket.number}")
            for m in source.messages if m not in ok)]
        seen = source.customers() if source.requester.lower() in known else set()
        return [(ConversationAdopted(
            ticket_id=target, from_ticket=source.ticket_id, messages=tuple(ok),
            held=tuple(held), participants=tuple(sorted(seen))),
            f"adopted:{source.ticket_id}")]

    for _ in range(MAX_HOPS):
        await store.decide(target, decide)
        if not onward:
            break
        target = onward  # the target moved on itself: adopt into where it went
    for mid in (*(m.message_id for m in source.messages), *source.held):
        await index.put(message_key(source.mailbox, mid), link(target, source.mailbox))


def unheld(held: MessageHeld, ticket_id: str, method: str, why: str) -> MessageThreaded:
    """The `message.threaded` of a held message an agent let into `ticket_id`."""
    fields = msgspec.structs.asdict(held)
    del fields["reason"]
    fields.update(ticket_id=ticket_id, method=method, reasons=(*held.reasons, why))
    return MessageThreaded(**fields)


async def remember_open(index: Index, sender: str, ticket_id: str, organisation: bool = True
                        ) -> None:
    """Keep the requester's latest tickets for content matching, and with `organisation`
    the sender's domain's too (read only by threading's same_domain; a hot key otherwise:
    every new ticket from gmail.com would write one)."""
    def add(value: str | None) -> str:
        ids = msgspec.json.decode(value or "[]", type=list[str])
        ids = [*ids[-19:], ticket_id] if ticket_id not in ids else ids
        return msgspec.json.encode(ids).decode()

    for key in (f"q:{sender}", *([f"q:@{tenant(sender)}"] if organisation else [])):
        await index.update(key, add)  # two mails of one sender at once: keep both
