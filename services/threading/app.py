"""The threading service: puts every received message into a ticket."""

from __future__ import annotations

import structlog
from nats.js import JetStreamContext

from services.common.events import Envelope, Event, MessageReceived, MessageThreaded, TicketOpened
from services.common.runtime import consume, open_bus
from services.common.settings import Settings
from services.common.store import (
    JetStreamEventStore,
    MessageIndex,
    close,
    next_ticket_number,
)
from services.common.ticket import Ticket
from services.threading.engine import candidates, locate, new_ticket_id

log = structlog.get_logger()


class Threader:
    def __init__(self, js: JetStreamContext, ns: str) -> None:
        self.js, self.ns = js, ns
        self.store = JetStreamEventStore(js, ns)
        self.index = MessageIndex(js, ns)

    async def handle(self, seq: int, env: Envelope) -> None:
        if not isinstance(env.data, MessageReceived):
            return  # rejections stay quarantined
        msg = env.data
        with structlog.contextvars.bound_contextvars(message_id=msg.message_id):
            if await self.index.get(msg.message_id):
                return  # threaded before (a redelivery); never move a threaded message
            known = {}
            for mid in candidates(msg):
                ticket = await self.index.get(mid)
                if ticket:
                    known[mid] = ticket
            ticket_id, method = locate(msg, known)
            opened: TicketOpened | None = None
            if ticket_id is None:
                ticket_id = new_ticket_id(msg)
                if not (await self.store.load(ticket_id)).exists:
                    opened = TicketOpened(
                        ticket_id=ticket_id,
                        number=await next_ticket_number(self.js, self.ns, ticket_id),
                        subject=msg.subject, requester=msg.sender, mailbox=msg.mailbox,
                        message_id=msg.message_id,
                    )
            threaded = MessageThreaded(
                ticket_id=ticket_id, message_id=msg.message_id, method=method,
                sender=msg.sender, subject=msg.subject, reply=msg.reply, auto=msg.auto,
            )

            def decide(ticket: Ticket) -> list[tuple[Event, str]]:
                items: list[tuple[Event, str]] = []
                if opened is not None and not ticket.exists:
                    items.append((opened, "opened"))
                if not ticket.has_message(msg.message_id):
                    items.append((threaded, msg.message_id))
                return items

            await self.store.decide(ticket_id, decide)
            await self.index.put(msg.message_id, ticket_id)
            log.info("message_threaded", ticket_id=ticket_id, method=method,
                     opened=opened is not None)


async def run(settings: Settings) -> None:
    nc, js = await open_bus(settings, "tidydesk-threading")
    try:
        await consume(js, settings.namespace, "threading", Threader(js, settings.namespace).handle)
    finally:
        await close(nc)  # unacked work is redelivered to the next instance

