"""Accepting one mail: keep the raw bytes, then publish its intake event exactly once."""

from __future__ import annotations

import asyncio

import structlog

from services.common.events import MessageReceived, MessageRejected
from services.common.store import JetStreamEventStore, RawStore
from services.ingest.parse import intake_key, parse

log = structlog.get_logger()


class Intake:
    """The single way mail enters tidydesk (SMTP, HTTP and import all call `accept`)."""

    def __init__(self, store: JetStreamEventStore, raw: RawStore) -> None:
        self.store, self.raw = store, raw

    async def accept(self, raw: bytes, *, mailbox: str = "", envelope_from: str = ""
                     ) -> tuple[MessageReceived | MessageRejected, bool]:
        """Store and publish; returns the event and whether it was new (False = duplicate).

        Raises when NATS cannot take the mail, so the caller can refuse it temporarily.
        """
        # parsing hostile mail can take CPU seconds: keep the event loop (SMTP, IMAP) serving
        event = await asyncio.to_thread(parse, raw, mailbox=mailbox, envelope_from=envelope_from)
        await self.raw.put(raw)  # before the event: an event never names missing bytes
        real_id = event.message_id if isinstance(event, MessageReceived) else None
        if real_id and real_id.endswith("@tidydesk.invalid"):
            real_id = None
        new = await self.store.record_intake(event, intake_key(real_id, raw))
        if isinstance(event, MessageReceived):
            log.info("message_received", message_id=event.message_id, digest=event.digest,
                     duplicate=not new, auto=event.auto)
        else:
            log.warning("message_rejected", digest=event.digest, reason=event.reason,
                        duplicate=not new)
        return event, new
