"""The event contract: frozen, tagged msgspec Structs in a CloudEvents 1.0 envelope.

Schemas evolve additively only: new fields get defaults, nothing is renamed or retyped.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from tidydesk.common import trace


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event; `type` is the tag, e.g. `ticket.reopened`."""


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    content_type: str
    size: int
    sha256: str


class MessageReceived(Event, frozen=True, tag="message.received"):
    """A mail was accepted by intake; raw bytes are in the raw store under `digest`."""

    message_id: str  # RFC 5322 Message-ID without angle brackets (synthesised when missing)
    digest: str  # sha256 of the raw bytes, the key of the raw store
    mailbox: str  # the recipient address it was delivered to
    sender: str  # bare address
    sender_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    date: datetime | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    text: str = ""  # full plain-text body, quotes included
    reply: str = ""  # the newly written text
    auto: str | None = None  # why intake thinks a machine sent it (auto-reply, bounce, bulk)
    attachments: tuple[Attachment, ...] = ()
    size: int = 0
    notes: tuple[str, ...] = ()  # parse defects and fallbacks worth knowing
    # sha256 of the normalised content (From, Date, Subject, Message-ID, text, attachments):
    # with the tenant, what tells a redelivery (same content) from a reused Message-ID
    content_digest: str = ""
    # the Message-ID the mail carried when another mail of the tenant already had it;
    # `message_id` is then synthesised from `content_digest`
    claimed_message_id: str | None = None
    # what a trusted relay's Authentication-Results says of the From address: "pass"
    # (DMARC, or DKIM of the From domain), "fail" (DMARC: a spoofed From), None = no evidence
    sender_auth: str | None = None


class MessageRejected(Event, frozen=True, tag="message.rejected"):
    """A mail could not be used; its raw bytes are kept under `digest` for inspection."""

    digest: str
    reason: str
    mailbox: str = ""
    size: int = 0


class TicketOpened(Event, frozen=True, tag="ticket.opened"):
    ticket_id: str
    number: int
    subject: str
    requester: str
    mailbox: str
    message_id: str
    split_from: str | None = None


class MessageThreaded(Event, frozen=True, tag="message.threaded"):
    """A received message joined a ticket; carries what policies need to read."""

    ticket_id: str
    message_id: str
    method: str  # new | in-reply-to | references | split | ...
    confidence: float = 1.0
    sender: str = ""
    subject: str = ""
    reply: str = ""
    auto: str | None = None
    reasons: tuple[str, ...] = ()
    related: str | None = None  # a ticket that looks related, below the join threshold
    related_confidence: float = 0.0


class PolicyDecision(Event, frozen=True, kw_only=True):
    """Fields shared by every decision a policy takes about a follow-up."""

    ticket_id: str
    message_id: str
    policy: str
    version: str
    confidence: float
    reasons: tuple[str, ...] = ()


class TicketReopened(PolicyDecision, frozen=True, tag="ticket.reopened"):
    pass


class FollowupAcknowledged(PolicyDecision, frozen=True, tag="followup.acknowledged"):
    """Thanks-only follow-up: the ticket stays as it was; credit goes to the solver."""

    credited_agent: str | None = None


class FollowupRecorded(PolicyDecision, frozen=True, tag="followup.recorded"):
    """A machine-sent follow-up (auto-reply, bounce, bulk): on the record, no action, no credit."""


class TicketSplit(PolicyDecision, frozen=True, tag="ticket.split"):
    """An unrelated topic was moved from `ticket_id` to the new ticket `new_ticket_id`."""

    new_ticket_id: str


class DecisionShadowed(PolicyDecision, frozen=True, tag="decision.shadowed"):
    """What a candidate policy in shadow mode would have decided; changes nothing."""

    verdict: str
    active_verdict: str


class ReplySent(Event, frozen=True, tag="reply.sent"):
    """An agent answered; notify mails it from `sender` with the ticket's reply token."""

    ticket_id: str
    message_id: str
    agent: str
    text: str
    sender: str  # the support mailbox it goes out from
    to: str
    subject: str
    reply_to: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    # set when no person wrote it (e.g. `out-of-hours`): mailed with RFC 3834
    # `Auto-Submitted: auto-replied`, and not a first response
    auto: str | None = None


class TicketMerged(Event, frozen=True, tag="ticket.merged"):
    """This ticket's conversation continues in `into`; new mail for it goes there."""

    ticket_id: str
    into: str
    agent: str = ""


class MergeAccepted(Event, frozen=True, tag="ticket.merge_accepted"):
    """This (unmerged) ticket agreed to take `from_ticket` in; the merge happens when
    `ticket.merged` lands on `from_ticket` at `source_version` (else this stays unused)."""

    ticket_id: str
    from_ticket: str
    source_version: int
    agent: str = ""


class TicketUnmerged(Event, frozen=True, tag="ticket.unmerged"):
    """An agent undid this ticket's merge into `from_ticket`: its own messages (`message_ids`)
    come back and it takes `status` again."""

    ticket_id: str
    from_ticket: str
    status: str
    message_ids: tuple[str, ...] = ()
    agent: str = ""


class HeldAccepted(Event, frozen=True, tag="held.accepted"):
    """An agent let a held message into the conversation; `message.threaded` follows."""

    ticket_id: str
    message_id: str
    agent: str = ""


class HeldMoved(Event, frozen=True, tag="held.moved"):
    """An agent sent a held message to `into` (another ticket, or one opened for it)."""

    ticket_id: str
    message_id: str
    into: str
    agent: str = ""


class TicketSolved(Event, frozen=True, tag="ticket.solved"):
    ticket_id: str
    agent: str = ""


class TicketClosed(Event, frozen=True, tag="ticket.closed"):
    ticket_id: str
    agent: str = ""


class MessageHeld(Event, frozen=True, tag="message.held"):
    """A message names this ticket but its sender is not verified: kept aside for an agent
    to accept or move; it is not part of the conversation (no policy, no participant)."""

    ticket_id: str
    message_id: str
    method: str  # the evidence that named the ticket: in-reply-to | references | subject-number
    reason: str
    confidence: float = 1.0
    sender: str = ""
    subject: str = ""
    reply: str = ""
    auto: str | None = None
    reasons: tuple[str, ...] = ()
    related: str | None = None
    related_confidence: float = 0.0


class ParticipantsSeen(Event, frozen=True, tag="participants.seen"):
    """Addresses a threaded message was also sent to (To/Cc): participants from now on."""

    ticket_id: str
    message_id: str
    addresses: tuple[str, ...]


class ConversationMoved(Event, frozen=True, tag="conversation.moved"):
    """This ticket's messages belong to `into`'s conversation (a reply that arrived before
    its parent opened it); `conversation.adopted` on `into` carries them over."""

    ticket_id: str
    into: str
    message_ids: tuple[str, ...]
    reason: str = ""


class ConversationAdopted(Event, frozen=True, tag="conversation.adopted"):
    """The messages of `from_ticket` (moved here) are now this ticket's."""

    ticket_id: str
    from_ticket: str
    messages: tuple[MessageThreaded, ...] = ()
    held: tuple[MessageHeld, ...] = ()
    participants: tuple[str, ...] = ()


class AutoRecorded(Event, frozen=True, tag="message.auto_recorded"):
    """An auto-reply that threads nowhere: recorded, but it opens no ticket."""

    message_id: str
    sender: str
    mailbox: str
    auto: str
    subject: str = ""
    ticket_id: str | None = None  # always None: the shape of a threading outcome
    method: str = "auto"
    confidence: float = 1.0
    related: str | None = None
    related_confidence: float = 0.0
    reasons: tuple[str, ...] = ()


# --- the helpdesk around the decisions (tidydesk.desk): tags, assignment, escalation, kudos ---

class TicketTagged(Event, frozen=True, tag="ticket.tagged"):
    """A tag was added, by a mailbox's tag rule (`rule`) or by an agent (`agent`)."""

    ticket_id: str
    tag: str
    rule: str | None = None
    agent: str = ""


class TicketUntagged(Event, frozen=True, tag="ticket.untagged"):
    ticket_id: str
    tag: str
    agent: str = ""


class TicketAssigned(Event, frozen=True, tag="ticket.assigned"):
    """The ticket is `agent`'s now; `by` says who decided: `agent:<name>`, `rota:<team>`,
    `rule:<name>` or `escalation:<rule>`."""

    ticket_id: str
    agent: str
    team: str | None = None
    by: str = ""
    reason: str = ""


class TicketEscalated(Event, frozen=True, tag="ticket.escalated"):
    """An escalation rule fired: the ticket goes to the team lead `lead`."""

    ticket_id: str
    rule: str
    reason: str
    lead: str


class AgentThanked(Event, frozen=True, tag="agent.thanked"):
    """An acknowledged thank-you (`message_id`) for the agent who solved the ticket: kudos,
    never queue work."""

    ticket_id: str
    agent: str
    message_id: str


class NoticeSent(Event, frozen=True, tag="notice.sent"):
    """A mail about this ticket to someone on the team (an escalation to the lead, kudos
    forwarded); notify mails it. Not part of the customer conversation."""

    ticket_id: str
    message_id: str
    to: str
    sender: str
    subject: str
    text: str
    reason: str = ""  # escalation:<rule> | kudos


AnyEvent = (
    MessageReceived
    | MessageRejected
    | TicketOpened
    | MessageThreaded
    | TicketReopened
    | FollowupAcknowledged
    | FollowupRecorded
    | TicketSplit
    | DecisionShadowed
    | ReplySent
    | TicketMerged
    | MergeAccepted
    | TicketUnmerged
    | HeldAccepted
    | HeldMoved
    | TicketSolved
    | TicketClosed
    | MessageHeld
    | ParticipantsSeen
    | ConversationMoved
    | ConversationAdopted
    | AutoRecorded
    | TicketTagged
    | TicketUntagged
    | TicketAssigned
    | TicketEscalated
    | AgentThanked
    | NoticeSent
)
EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__


def type_of(event: Event) -> str:
    """The event's tag, e.g. `ticket.reopened`."""
    return str(type(event).__struct_config__.tag)


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """CloudEvents 1.0 structured-mode JSON envelope."""

    id: str
    source: str
    type: str  # tidydesk.<event tag>
    subject: str  # ticket id, or the raw digest for intake events
    time: datetime
    data: AnyEvent
    specversion: Literal["1.0"] = "1.0"
    datacontenttype: Literal["application/json"] = "application/json"
    # W3C trace context (CloudEvents distributed-tracing extension): the trace of the mail
    # this event follows from, a span of its own. Absent on events recorded before it.
    traceparent: str | msgspec.UnsetType | None = msgspec.UNSET


_decoder = msgspec.json.Decoder(Envelope)
_encoder = msgspec.json.Encoder()


LEGACY_SOURCE = "tidydesk"  # the `source` of events recorded before source_for()
MAX_EVENT_BYTES = 512 * 1024  # encoded event; NATS refuses payloads over 1 MiB by default


def source_for(ns: str) -> str:
    """The CloudEvents `source` of a namespace's events: a URI-reference naming it."""
    return f"/tidydesk/{ns}"


def envelope(event: Event, subject: str, key: str, source: str = LEGACY_SOURCE) -> Envelope:
    """Wrap an event; `key` makes the id deterministic so a retried publish is a no-op."""
    tag = type_of(event)
    eid = hashlib.sha256(f"{tag}\0{subject}\0{key}".encode()).hexdigest()[:32]
    return Envelope(
        id=eid,
        source=source,
        type=f"tidydesk.{tag}",
        subject=subject,
        time=datetime.now(UTC),
        data=event,  # type: ignore[arg-type]
        traceparent=trace.next_span() or msgspec.UNSET,
    )


def encode(env: Envelope) -> bytes:
    return _encoder.encode(env)


def decode(data: bytes) -> Envelope:
    """Decode once at the edge; raises msgspec.ValidationError/DecodeError on bad input."""
    return _decoder.decode(data)


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every event, generated from the Structs."""
    (_, components) = msgspec.json.schema_components((*EVENT_TYPES, Envelope))
    return components
