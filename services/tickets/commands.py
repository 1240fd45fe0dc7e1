"""An agent's commands on a ticket, as data: each command is a msgspec Struct with one pure
handler `(ticket, cmd) -> [(event, dedup key)]` in HANDLERS, and `execute` runs it on the
event store (load, decide, append; again on a conflict) with the If-Match check.

A handler returns [] when the ticket is where the command leads already: commands are
idempotent by state, and a state reached needs no version check. Merge and the held-mail
commands touch two tickets; `execute` runs them as a short process around their handler.
Refusals are CommandError subclasses; the HTTP API maps them to problems.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec
import structlog

from tidydesk.common.events import (
    MAX_EVENT_BYTES,
    Event,
    HeldAccepted,
    HeldMoved,
    ReplySent,
    TicketAssigned,
    TicketClosed,
    TicketMerged,
    TicketOpened,
    TicketSolved,
    TicketTagged,
    TicketUnmerged,
    TicketUntagged,
)
from tidydesk.common.store import Conflict, EventStore, Index, digest_key, link, message_key
from tidydesk.tickets.conversation import MAX_HOPS, live, merge_at, remember_open, unheld
from tidydesk.tickets.ticket import Ticket

log = structlog.get_logger()
Items = list[tuple[Event, str]]
ENVELOPE_ROOM = 2048  # bytes the CloudEvents envelope adds around an event
MERGE_ATTEMPTS = 30
MAX_HOLDERS = 1000  # tickets merged into one whose held mail it acts on


# --- refusals ---

class CommandError(Exception):
    """A command the ticket refuses; the message tells an agent why."""


class VersionMismatch(CommandError):
    """The ticket is not at a version the caller named (If-Match)."""

    def __init__(self, version: int, expected: set[int]) -> None:
        self.version = version
        named = ", ".join(map(str, sorted(expected))) or "the one named"
        super().__init__(f"the ticket is at version {version}, not {named}; "
                         "reload it and decide again")


class Refused(CommandError):
    """The ticket's state (or a race that kept changing it) refuses the command."""


class TooLarge(CommandError):
    """The command makes an event larger than the event store takes."""


class NotHeld(CommandError):
    """The message is not held on the ticket (nor on one merged into it)."""


# --- commands ---

class Solve(msgspec.Struct, frozen=True, kw_only=True):
    agent: str = ""


class Close(msgspec.Struct, frozen=True, kw_only=True):
    agent: str = ""


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """An agent's answer; `message_id` makes a retry the same reply."""

    message_id: str
    text: str
    reply_to: str
    agent: str = ""


class Merge(msgspec.Struct, frozen=True, kw_only=True):
    into: str  # a ticket id
    agent: str = ""


class Unmerge(msgspec.Struct, frozen=True, kw_only=True):
    agent: str = ""


class Tag(msgspec.Struct, frozen=True, kw_only=True):
    tag: str
    agent: str = ""


class Untag(msgspec.Struct, frozen=True, kw_only=True):
    tag: str
    agent: str = ""


class Assign(msgspec.Struct, frozen=True, kw_only=True):
    agent: str
    team: str | None = None
    by: str = ""  # the agent who decided ("" = the API)


class AcceptHeld(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    agent: str = ""


class MoveHeld(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    into: str | None = None  # a ticket id; None: a new ticket of its own
    agent: str = ""


Command = (Solve | Close | Reply | Merge | Unmerge | Tag | Untag | Assign | AcceptHeld
           | MoveHeld)


class Done(msgspec.Struct, kw_only=True):
    """What a command did: `ticket` as decided on, the events appended, and where a held
    message is now (`went`)."""

    ticket: Ticket
    events: list[Event]
    changed: bool
    went: str = ""


# --- the handlers: one per command, pure ---

C = TypeVar("C")
HANDLERS: dict[type, Callable[[Ticket, Any], Items]] = {}


def handles(kind: type[C]) -> Callable[[Callable[[Ticket, C], Items]],
                                       Callable[[Ticket, C], Items]]:
    def register(handler: Callable[[Ticket, C], Items]) -> Callable[[Ticket, C], Items]:
        HANDLERS[kind] = handler
        return handler
    return register


@handles(Solve)
def solve(ticket: Ticket, cmd: Solve) -> Items:
    if ticket.status in ("solved", "closed"):
        return []
    return [(TicketSolved(ticket_id=ticket.ticket_id, agent=cmd.agent),
             f"solved@{ticket.version}")]


@handles(Close)
def close(ticket: Ticket, cmd: Close) -> Items:
    if ticket.status == "closed":
        return []
    return [(TicketClosed(ticket_id=ticket.ticket_id, agent=cmd.agent),
             f"closed@{ticket.version}")]


@handles(Reply)
def reply(ticket: Ticket, cmd: Reply) -> Items:
    if ticket.has_message(cmd.message_id):
        return []  # a retry of a reply that landed
    history = [m.message_id for m in ticket.messages]
    subject = ticket.subject if f"[#{ticket.number}]" in ticket.subject else (
        f"[#{ticket.number}] {ticket.subject}")
    return [(ReplySent(
        ticket_id=ticket.ticket_id, message_id=cmd.message_id, agent=cmd.agent, text=cmd.text,
        sender=ticket.mailbox, to=ticket.requester, subject=f"Re: {subject}",
        reply_to=cmd.reply_to, in_reply_to=history[-1] if history else None,
        references=tuple(history[-20:]),
    ), cmd.message_id)]


@handles(Merge)
def merge(ticket: Ticket, cmd: Merge) -> Items:
    """The source's side of a merge (the target's `merge_accepted` comes from `merge_at`)."""
    if ticket.merged_into == cmd.into:
        return []
    if ticket.merged_into is not None:
        raise Refused(f"ticket {ticket.ticket_id} is merged into {ticket.merged_into}"
                      " already (unmerge it first)")
    return [(TicketMerged(ticket_id=ticket.ticket_id, into=cmd.into, agent=cmd.agent),
             f"merge:{cmd.into}@{ticket.version}")]


@handles(Unmerge)
def unmerge(ticket: Ticket, cmd: Unmerge) -> Items:
    """Undo an agent's merge: the ticket takes its own messages and its status back."""
    if ticket.merged_into is None:
        return []
    if ticket.moved:
        raise Refused("this ticket's conversation was moved by threading (its replies "
                      "arrived first), not merged by an agent")
    ids = (*(m.message_id for m in ticket.messages), *ticket.held)
    return [(TicketUnmerged(ticket_id=ticket.ticket_id, from_ticket=ticket.merged_into,
                            status=ticket.premerge or "open", message_ids=ids,
                            agent=cmd.agent), f"unmerge@{ticket.version}")]


@handles(Tag)
def tag(ticket: Ticket, cmd: Tag) -> Items:
    if not ticket.exists or cmd.tag in ticket.tags:
        return []
    return [(TicketTagged(ticket_id=ticket.ticket_id, tag=cmd.tag, agent=cmd.agent),
             f"tag:{cmd.tag}@{ticket.version}")]


@handles(Untag)
def untag(ticket: Ticket, cmd: Untag) -> Items:
    if not ticket.exists or cmd.tag not in ticket.tags:
        return []
    return [(TicketUntagged(ticket_id=ticket.ticket_id, tag=cmd.tag, agent=cmd.agent),
             f"untag:{cmd.tag}@{ticket.version}")]


@handles(Assign)
def assign(ticket: Ticket, cmd: Assign) -> Items:
    if ticket.assignee == cmd.agent:
        return []
    return [(TicketAssigned(ticket_id=ticket.ticket_id, agent=cmd.agent, team=cmd.team,
                            by=f"agent:{cmd.by}" if cmd.by else "api"),
             f"assign:{cmd.agent}@{ticket.version}")]


@handles(AcceptHeld)
def accept_held(ticket: Ticket, cmd: AcceptHeld) -> Items:
    """A held message joins: `message.threaded` (its sender is a participant from now on,
    policies see it), then `held.accepted`."""
    held = ticket.held.get(cmd.message_id)
    if held is None:
        return []
    items: Items = []
    key = f"accepted:{cmd.message_id}"
    if not any(m.message_id == cmd.message_id for m in ticket.messages):
        why = f"held ({held.reason}), accepted by {cmd.agent or 'an agent'}"
        items.append((unheld(held, ticket.ticket_id, held.method, why), key))
    items.append((HeldAccepted(ticket_id=ticket.ticket_id, message_id=cmd.message_id,
                               agent=cmd.agent), key))
    return items


@handles(MoveHeld)
def move_held(ticket: Ticket, cmd: MoveHeld) -> Items:
    """The source's side of a move, once the message is threaded at `cmd.into`."""
    if cmd.message_id not in ticket.held or cmd.into is None:
        return []
    return [(HeldMoved(ticket_id=ticket.ticket_id, message_id=cmd.message_id, into=cmd.into,
                       agent=cmd.agent), f"held-moved:{cmd.message_id}")]


# --- running a command ---

def check(ticket: Ticket, items: Sequence[tuple[Event, str]], cmd: object,
          expected: set[int] | None) -> None:
    """Before a change: the version the caller named, and events the store takes."""
    if items and expected is not None and ticket.version not in expected:
        raise VersionMismatch(ticket.version, expected)
    for event, _ in items:
        size = len(msgspec.json.encode(event)) + ENVELOPE_ROOM
        if size > MAX_EVENT_BYTES:
            raise TooLarge(f"the {type(cmd).__name__.lower()} makes a {size}-byte event; at "
                           f"most {MAX_EVENT_BYTES} bytes fit (shorten the text)")


async def execute(store: EventStore, ticket_id: str, cmd: Command,
                  expected: set[int] | None = None, index: Index | None = None) -> Done:
    """Run `cmd` on ticket `ticket_id`; `expected`: the versions If-Match accepts (None:
    any). A reply (its Message-ID is linked to the ticket) and the held-mail commands also
    need the `index`."""
    if index is None and isinstance(cmd, Reply | AcceptHeld | MoveHeld):
        raise TypeError(f"{type(cmd).__name__} needs the index")
    match cmd:
        case Merge():
            return await _merge(store, ticket_id, cmd, expected)
        case AcceptHeld() | MoveHeld() if index is not None:
            return await _held(store, index, ticket_id, cmd, expected)
    handler, decided = HANDLERS[type(cmd)], list[Ticket]()

    def decide(ticket: Ticket) -> Items:
        decided[:] = [ticket]
        items = handler(ticket, cmd)
        check(ticket, items, cmd, expected)
        return items

    events = await store.decide(ticket_id, decide)
    ticket = decided[-1]
    if isinstance(cmd, Reply) and index is not None:  # a customer's answer to it threads
        await index.put(message_key(ticket.mailbox, cmd.message_id),
                        link(ticket_id, ticket.mailbox))
    return Done(ticket=ticket, events=events, changed=bool(events))


async def _merge(store: EventStore, ticket_id: str, cmd: Merge, expected: set[int] | None
                 ) -> Done:
    """Both tickets at the versions read (`merge_at`): of merges that would close a loop
    one conflicts, looks again and finds the loop."""
    for attempt in range(MERGE_ATTEMPTS):
        source = await store.load(ticket_id)
        items = merge(source, cmd)
        if not items:
            return Done(ticket=source, events=[], changed=False)
        check(source, items, cmd, expected)
        target, path = await store.load(cmd.into), [cmd.into]
        while target.merged_into is not None and len(path) < MAX_HOPS:
            path.append(target.merged_into)
            target = await store.load(target.merged_into)
        if len(path) > 1:
            loop = " (merging would make a loop)" if ticket_id in path else ""
            raise Refused(f"ticket {cmd.into} is merged: {' -> '.join(path)}{loop}; "
                          "merge into an unmerged ticket")
        try:
            await merge_at(store, source, target, items, cmd.agent)
        except Conflict:  # someone wrote first: look again, after a jitter that ends ties
            log.info("merge_conflict_retry", ticket_id=ticket_id, into=cmd.into)
            await asyncio.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))
            continue
        return Done(ticket=source, events=[e for e, _ in items], changed=True)
    raise Refused(f"tickets {ticket_id} and {cmd.into} kept changing; try again")


async def holders(store: EventStore, ticket: Ticket) -> list[Ticket]:
    """The ticket and those merged into it (and into them): held mail of all of them is
    this ticket's to act on."""
    out, seen = [ticket], {ticket.ticket_id}
    for t in out:
        for source_id in sorted(t.absorbing - seen):
            seen.add(source_id)
            source = await store.load(source_id)
            if source.merged_into == t.ticket_id and len(out) < MAX_HOLDERS:
                out.append(source)
    return out


async def _held(store: EventStore, index: Index, ticket_id: str, cmd: AcceptHeld | MoveHeld,
                expected: set[int] | None) -> Done:
    """Accept or move mail held on the ticket or on one merged into it; the version
    checked is the ticket's own. Mail held where the conversation no longer is (the
    ticket is merged, or it is held on one merged into it) joins where it is: a move."""
    ticket = await store.load(ticket_id)
    holder = next((h for h in await holders(store, ticket) if cmd.message_id in h.held), None)
    if holder is None:
        if isinstance(cmd, AcceptHeld) and any(
                m.message_id == cmd.message_id for m in ticket.messages):
            return Done(ticket=ticket, events=[], changed=False, went=ticket_id)
        raise NotHeld(f"no held message {cmd.message_id!r} on this ticket")
    if expected is not None and ticket.version not in expected:
        raise VersionMismatch(ticket.version, expected)
    if isinstance(cmd, MoveHeld):
        return await _move(store, index, holder.ticket_id, cmd)
    into = ticket.merged_into or (ticket_id if holder is not ticket else None)
    if into is None:
        events = await store.decide(ticket_id, lambda t: accept_held(t, cmd))
        return Done(ticket=ticket, events=events, changed=bool(events), went=ticket_id)
    try:
        moved = await _move(store, index, holder.ticket_id, MoveHeld(
            message_id=cmd.message_id, into=into, agent=cmd.agent))
    except NotHeld:
        return Done(ticket=ticket, events=[], changed=False, went=ticket_id)
    return msgspec.structs.replace(moved, ticket=ticket)


async def _move(store: EventStore, index: Index, ticket_id: str, cmd: MoveHeld) -> Done:
    """Send a message held on `ticket_id` to ticket `cmd.into` (its live end), or to a new
    ticket of its own: threaded there first, then `held.moved` here (a crash in between
    leaves it in both, and a retry finishes)."""
    source = await store.load(ticket_id)
    held = source.held.get(cmd.message_id)
    if held is None:
        raise NotHeld(f"no held message {cmd.message_id!r} on this ticket")
    target = await live(store, index, cmd.into) if cmd.into else digest_key(
        f"held\0{ticket_id}\0{cmd.message_id}")[:24]
    if target == ticket_id:
        raise Refused(f"ticket {cmd.into} is where the message is held")
    why = f"held on #{source.number} ({held.reason}), moved by {cmd.agent or 'an agent'}"
    threaded = unheld(held, target, "new" if cmd.into is None else "moved", why)
    opened: TicketOpened | None = None
    if cmd.into is None and not (await store.load(target)).exists:
        number = await index.next_number(target)
        opened = TicketOpened(ticket_id=target, number=number, subject=held.subject,
                              requester=held.sender, mailbox=source.mailbox,
                              message_id=cmd.message_id)
        await index.put(f"n:{number}", link(target, source.mailbox))
        await remember_open(index, held.sender, target)

    def thread(ticket: Ticket) -> Items:
        if ticket.merged_into is not None:
            raise Refused(f"ticket {target} was merged meanwhile: move it again")
        items: Items = []
        if opened is not None and not ticket.exists:
            items.append((opened, "opened"))
        if not ticket.has_message(cmd.message_id):
            items.append((threaded, f"moved:{cmd.message_id}"))
        return items

    events = await store.decide(target, thread)
    await index.put(message_key(source.mailbox, cmd.message_id), link(target, source.mailbox))
    resolved = msgspec.structs.replace(cmd, into=target)
    events += await store.decide(ticket_id, lambda t: move_held(t, resolved))
    return Done(ticket=source, events=events, changed=True, went=target)
