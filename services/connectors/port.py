"""The connector port: what tidydesk's events mean to another helpdesk, as plain operations.

`plan` is pure: (event, the ticket just before it, the ticket's messages) -> operations.
A `Helpdesk` adapter (Request Tracker, ...) carries them out; `tidydesk.connectors.sync`
feeds it from a durable consumer and remembers what it has done.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec

from tidydesk.common.events import (
    Event,
    FollowupAcknowledged,
    FollowupRecorded,
    MessageThreaded,
    ReplySent,
    TicketClosed,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    TicketSplit,
)
from tidydesk.tickets.ticket import Ticket

Status = Literal["open", "resolved"]


class Create(msgspec.Struct, frozen=True, kw_only=True):
    """Open a ticket over there for tidydesk ticket `ticket_id`, with its first message."""

    ticket_id: str
    subject: str
    requester: str
    text: str
    refers_to: str | None = None  # the tidydesk ticket it was split from


class Correspond(msgspec.Struct, frozen=True, kw_only=True):
    """A message of the conversation (the requester sees it)."""

    ticket_id: str
    text: str
    status: Status | None = None


class Comment(msgspec.Struct, frozen=True, kw_only=True):
    """A note for agents only."""

    ticket_id: str
    text: str
    status: Status | None = None


class SetStatus(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: str
    status: Status


Op = Create | Correspond | Comment | SetStatus


class Helpdesk(Protocol):
    """An external helpdesk a connector writes to; ids are the helpdesk's own ticket ids."""

    async def create(self, op: Create, refers_to: str | None) -> str:
        """Create the ticket (linked to `refers_to`, an id of the helpdesk); its id."""
        ...

    async def find(self, op: Create, since: datetime) -> str | None:
        """The ticket an earlier, unrecorded attempt at `op` created (at or after `since`)."""
        ...

    async def correspond(self, external: str, op: Correspond) -> None: ...

    async def comment(self, external: str, op: Comment) -> None: ...

    async def set_status(self, external: str, op: SetStatus) -> None: ...


def plan(event: Event, before: Ticket, messages: dict[str, MessageThreaded],
         opening: str = "") -> list[Op]:
    """The operations that mirror `event`; `before` is its ticket as it was just before,
    `opening` the Message-ID its ticket.opened names (that message goes with Create)."""
    def text(message_id: str) -> str:
        found = messages.get(message_id)
        return found.reply if found is not None else ""

    match event:
        case TicketOpened() as e:
            return [Create(ticket_id=e.ticket_id, subject=e.subject, requester=e.requester,
                           text=text(e.message_id), refers_to=e.split_from)]
        case MessageThreaded() as e:
            if before.status in ("solved", "closed"):
                return []  # a follow-up: the policy's decision says what it does
            if e.message_id == opening:
                return []  # it went with Create
            if e.auto:
                return [Comment(ticket_id=e.ticket_id, text=f"Machine mail ({e.auto}):\n\n"
                                f"{e.reply}")]
            return [Correspond(ticket_id=e.ticket_id, text=e.reply)]
        case FollowupAcknowledged() | FollowupRecorded() as e:
            what = "Acknowledgement" if isinstance(e, FollowupAcknowledged) else "Machine mail"
            note = (f"{what} after the ticket was solved; tidydesk kept it solved "
                    f"({e.policy} {e.version}: {'; '.join(e.reasons)}).")
            return [Comment(ticket_id=e.ticket_id, text=f"{note}\n\n{text(e.message_id)}",
                            status="resolved")]
        case TicketReopened() as e:
            body = text(e.message_id)
            if not body:
                return [SetStatus(ticket_id=e.ticket_id, status="open")]
            return [Correspond(ticket_id=e.ticket_id, text=body, status="open")]
        case ReplySent() as e:  # a comment: correspondence would have RT mail it again
            return [Comment(ticket_id=e.ticket_id, text=f"Reply sent from tidydesk by "
                            f"{e.agent} to {e.to}:\n\n{e.text}")]
        case TicketSplit():
            return []  # the new ticket's own ticket.opened (split_from) creates and links it
        case TicketSolved() | TicketClosed() as e:
            return [SetStatus(ticket_id=e.ticket_id, status="resolved")]
    return []
