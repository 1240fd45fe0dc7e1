"""Accepting one mail: keep the raw bytes, then publish its intake event exactly once.

A mail is recorded once per tenant (the recipient mailbox's domain) and Message-ID. When
that key is taken by a mail of other content (`content_digest`), the Message-ID was reused:
this mail is recorded under an id synthesised from its content, and the claimed id is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import structlog

from tidydesk.common import metrics, trace
from tidydesk.common.events import MessageReceived, MessageRejected
from tidydesk.common.store import JetStreamEventStore, RawStore
from tidydesk.ingest.parse import intake_key, parse, synthesised_id
from tidydesk.ingest.senderauth import trusted_ids
from tidydesk.tickets.mailbox import tenant

log = structlog.get_logger()
Accepted = tuple[MessageReceived | MessageRejected, bool]
REUSED = "Message-ID reused by different content"
# bytes up to which a mail is parsed on the event loop: a worker thread costs GIL hand-offs
# that cost more than parsing a typical mail (a few KB, well under a millisecond); the
# slowest 16 KB found (a header of 1,100 encoded words) parses in ~40 ms
INLINE_PARSE = 16 * 1024


def per_tenant(mailboxes: Sequence[str]) -> list[str]:
    """The first mailbox of each tenant, in order: a mail is recorded once per tenant."""
    first: dict[str, str] = {}
    for mailbox in mailboxes:
        first.setdefault(tenant(mailbox.strip()), mailbox.strip().lower())
    return list(first.values())


class Intake:
    """The single way mail enters tidydesk (SMTP, HTTP and import all call `accept`)."""

    def __init__(self, store: JetStreamEventStore, raw: RawStore, *,
                 trusted_authserv: str = "") -> None:
        self.store, self.raw = store, raw
        self.trusted = trusted_ids(trusted_authserv)  # TIDYDESK_TRUSTED_AUTHSERV

    async def accept(self, raw: bytes, *, mailbox: str = "", envelope_from: str = "",
                     traceparent: str | None = None) -> Accepted:
        """Store and publish; returns the event and whether it was new (False = duplicate).

        Without `mailbox` (in-process callers) the first To address is the recipient.
        Raises when NATS cannot take the mail, so the caller can refuse it temporarily.
        """
        return (await self.deliver(raw, [mailbox], envelope_from=envelope_from,
                                   traceparent=traceparent))[0]

    async def deliver(self, raw: bytes, mailboxes: Sequence[str], *, envelope_from: str = "",
                      traceparent: str | None = None) -> list[Accepted]:
        """`accept` for each tenant among `mailboxes` (an SMTP transaction's recipients).

        Every event is published before this returns; a retry after a failure is safe.
        The mail's events start a trace, or continue `traceparent` (W3C) when it is valid.
        """
        with trace.starting(traceparent):
            first, *others = per_tenant(mailboxes) or [""]
            if len(raw) <= INLINE_PARSE:
                parsed = parse(raw, mailbox=first, envelope_from=envelope_from,
                               trusted=self.trusted)
            else:  # parsing big hostile mail can take CPU seconds: keep the loop serving
                parsed = await asyncio.to_thread(parse, raw, mailbox=first,
                                                 envelope_from=envelope_from,
                                                 trusted=self.trusted)
            await self.raw.put(raw)  # before the event: an event never names missing bytes
            events = [parsed, *(msgspec.structs.replace(parsed, mailbox=m) for m in others)]
            accepted = [await self._record(event) for event in events]
        for event, new in accepted:
            outcome = "rejected" if isinstance(event, MessageRejected) else "accepted"
            metrics.INTAKE.labels(outcome if new else "duplicate").inc()
        return accepted

    async def _record(self, event: MessageReceived | MessageRejected) -> Accepted:
        owner = tenant(event.mailbox)
        if isinstance(event, MessageRejected):
            new = await self.store.record_intake(event, intake_key(owner, event.digest))
            log.warning("message_rejected", digest=event.digest, reason=event.reason,
                        mailbox=event.mailbox, duplicate=not new)
            return event, new
        new = await self.store.record_intake(event, intake_key(owner, event.message_id))
        if not new:
            held = await self.store.intake_event(intake_key(owner, event.message_id))
            if (isinstance(held, MessageReceived) and held.content_digest
                    and held.content_digest != event.content_digest):
                event = msgspec.structs.replace(
                    event, message_id=synthesised_id(event.content_digest),
                    claimed_message_id=event.message_id, notes=(*event.notes, REUSED))
                new = await self.store.record_intake(event, intake_key(owner, event.message_id))
        log.info("message_received", message_id=event.message_id, digest=event.digest,
                 mailbox=event.mailbox, duplicate=not new, auto=event.auto,
                 claimed_message_id=event.claimed_message_id)
        return event, new
