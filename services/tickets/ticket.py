"""A ticket's state, folded from its events (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from tidydesk.common.events import (
    AutoRecorded,
    ConversationAdopted,
    ConversationMoved,
    Envelope,
    FollowupAcknowledged,
    FollowupRecorded,
    HeldAccepted,
    HeldMoved,
    MergeAccepted,
    MessageHeld,
    MessageThreaded,
    ParticipantsSeen,
    ReplySent,
    TicketAssigned,
    TicketClosed,
    TicketMerged,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    TicketSplit,
    TicketTagged,
    TicketUnmerged,
    TicketUntagged,
)


class Ticket(msgspec.Struct, kw_only=True):
    """Current state of one ticket; `version` is the stream sequence of its last event."""

    ticket_id: str
    number: int = 0
    status: str = "new"  # new (no ticket.opened yet) | open | solved | closed
    subject: str = ""
    requester: str = ""
    mailbox: str = ""
    opened_at: datetime | None = None
    updated_at: datetime | None = None
    solved_at: datetime | None = None
    solved_by: str | None = None
    split_from: str | None = None
    merged_into: str | None = None
    premerge: str = ""  # the status an agent's merge ended, given back by an unmerge
    # tickets that asked to merge into this one (merged if their merged_into says so)
    absorbing: set[str] = msgspec.field(default_factory=set)
    splits: list[str] = msgspec.field(default_factory=list)
    messages: list[MessageThreaded] = msgspec.field(default_factory=list)
    decided: set[str] = msgspec.field(default_factory=set)  # message ids a policy ruled on
    # follow-ups that arrived while the ticket was solved/closed: message id -> status then
    followups: dict[str, str] = msgspec.field(default_factory=dict)
    held: dict[str, MessageHeld] = msgspec.field(default_factory=dict)  # for an agent
    seen: set[str] = msgspec.field(default_factory=set)  # To/Cc of its threaded messages
    support: set[str] = msgspec.field(default_factory=set)  # addresses replies went out from
    agents: set[str] = msgspec.field(default_factory=set)
    moved: bool = False  # merged_into by conversation.moved: `into` adopts the messages
    adopted: set[str] = msgspec.field(default_factory=set)  # tickets whose messages moved here
    recorded: set[str] = msgspec.field(default_factory=set)  # auto mail recorded here
    tags: set[str] = msgspec.field(default_factory=set)
    assignee: str | None = None
    version: int = 0

    @property
    def exists(self) -> bool:
        return self.status != "new"

    def has_message(self, message_id: str) -> bool:
        """Threaded, held or recorded here already."""
        return message_id in self.held or message_id in self.recorded or any(
            m.message_id == message_id for m in self.messages)

    def apply(self, env: Envelope, seq: int = 0) -> None:
        """Fold one event into the state."""
        match env.data:
            case TicketOpened() as e:
                self.status, self.number, self.subject = "open", e.number, e.subject
                self.requester, self.mailbox, self.opened_at = e.requester, e.mailbox, env.time
                self.split_from = e.split_from
            case MessageThreaded() as e:
                self.messages.append(e)
                if self.status in ("solved", "closed"):
                    self.followups[e.message_id] = self.status
            case TicketReopened() as e:
                self.status, self.solved_at, self.solved_by = "open", None, None
                self.decided.add(e.message_id)
            case FollowupAcknowledged() | FollowupRecorded() as e:
                self.decided.add(e.message_id)
            case TicketSplit() as e:
                self.decided.add(e.message_id)
                self.splits.append(e.new_ticket_id)
            case TicketSolved() as e:
                self.status, self.solved_at, self.solved_by = "solved", env.time, e.agent or None
            case ReplySent() as e:  # the agent's side of the conversation
                self.support.add(e.sender.lower())
                self.agents.add(e.agent.lower())
                self.seen.add(e.to.lower())
                self.messages.append(MessageThreaded(
                    ticket_id=e.ticket_id, message_id=e.message_id, method="reply.sent",
                    sender=e.sender, subject=e.subject, reply=e.text))
            case TicketMerged() as e:
                self.premerge, self.status, self.merged_into = self.status, "merged", e.into
            case TicketUnmerged() as e:
                self.status, self.merged_into, self.premerge = e.status, None, ""
            case MergeAccepted() as e:
                self.absorbing.add(e.from_ticket)
            case HeldAccepted() | HeldMoved() as e:  # message.threaded follows where it went
                self.held.pop(e.message_id, None)
            case TicketClosed():
                self.status = "closed"
                self.solved_at = self.solved_at or env.time
            case MessageHeld() as e:
                self.held[e.message_id] = e
            case ParticipantsSeen() as e:
                self.seen.update(e.addresses)
            case ConversationMoved() as e:
                self.status, self.merged_into, self.moved = "merged", e.into, True
            case ConversationAdopted() as e:
                self.adopted.add(e.from_ticket)
                self.messages.extend(e.messages)
                self.held.update((h.message_id, h) for h in e.held)
                self.seen.update(e.participants)
            case AutoRecorded() as e:
                self.recorded.add(e.message_id)
            case TicketTagged() as e:
                self.tags.add(e.tag)
            case TicketUntagged() as e:
                self.tags.discard(e.tag)
            case TicketAssigned() as e:
                self.assignee = e.agent
        self.version = max(self.version, seq)
        self.updated_at = env.time

    def copy(self) -> Ticket:
        """An independent copy: applying events to it leaves this ticket as it is."""
        return msgspec.structs.replace(
            self, splits=list(self.splits), messages=list(self.messages),
            decided=set(self.decided), followups=dict(self.followups), held=dict(self.held),
            seen=set(self.seen), support=set(self.support), agents=set(self.agents),
            adopted=set(self.adopted), recorded=set(self.recorded),
            absorbing=set(self.absorbing),
            tags=set(self.tags))

    @property
    def participants(self) -> set[str]:
        """Addresses that have written to this ticket."""
        return {self.requester} | {m.sender for m in self.messages}

    def support_addresses(self) -> set[str]:
        """The tenant's own addresses on this ticket: never customer participants."""
        local, _, domain = self.mailbox.lower().partition("@")
        return self.support | ({f"{local.split('+')[0]}@{domain}"} if domain else set())

    def customers(self) -> set[str]:
        """Customer addresses this ticket has seen: requester, senders, To/Cc."""
        everyone = {self.requester.lower()} | {m.sender.lower() for m in self.messages}
        return (everyone | self.seen) - self.support_addresses() - {""}


def fold(ticket_id: str | Ticket, history: Iterable[tuple[int, Envelope]]) -> Ticket:
    """Build a ticket from (sequence, envelope) pairs in stream order.

    Given a Ticket instead of an id, fold the events that came after it onto a copy (the
    given ticket is not changed): fold(fold(t, a), b) == fold(t, a + b).
    """
    ticket = Ticket(ticket_id=ticket_id) if isinstance(ticket_id, str) else ticket_id.copy()
    for seq, env in history:
        ticket.apply(env, seq)
    return ticket
