"""The threading service: puts every received message into a ticket."""

from __future__ import annotations

import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from tidydesk.common import health
from tidydesk.common.events import (
    AutoRecorded,
    Envelope,
    Event,
    MessageHeld,
    MessageReceived,
    MessageThreaded,
)
from tidydesk.common.runtime import Lane, consume, open_bus
from tidydesk.common.settings import Settings
from tidydesk.common.store import JetStreamEventStore, KvIndex, close
from tidydesk.threading.engine import Options, Threader, candidates
from tidydesk.tickets.mailbox import tenant
from tidydesk.tickets.tokens import shared_secret

log = structlog.get_logger()
OUTCOMES: dict[type[Event], str] = {MessageThreaded: "message_threaded",
                                    MessageHeld: "message_held",
                                    AutoRecorded: "message_auto_recorded"}


AUTO_WAIT = 60.0  # s: an out-of-office often arrives before the mail it answers
OPEN_WAIT = 60.0  # s: the instance opening a ticket is a moment away, or died (redelivery)


def options(settings: Settings) -> Options:
    parsed = Options.parse(settings.subject_number, settings.thread_threshold,
                           settings.thread_same_domain)
    return msgspec.structs.replace(parsed, auto_wait=AUTO_WAIT, open_wait=OPEN_WAIT)


def lanes(options: Options) -> Lane:
    """A mail's keys: its requester (with same_domain: the sender's domain) and every
    Message-ID it names or has, each within its tenant. Mails sharing one are threaded in
    arrival order: content joining reads the requester's open tickets (`q:<sender>`, with
    same_domain also `q:@<domain>`), so two fresh mails of one requester at once would both
    miss the ticket the first one opens; and a reply handled while its parent is still
    opening the ticket would find the parent's claim but no ticket yet, and open it itself,
    unchecked and as its requester. Mails sharing no key touch different tickets or meet
    only through revision-checked writes (claims, expected sequences), as two instances do;
    across instances only the mail a ticket is named after opens it (`open_wait`)."""
    def keys(msg: Msg, env: Envelope) -> tuple[str, ...]:
        if not isinstance(env.data, MessageReceived):
            return (msg.subject,)
        mail, where = env.data, tenant(env.data.mailbox) + "\0"
        who = mail.sender.lower()
        ids = (mail.message_id, *candidates(mail))
        return (where + (tenant(who) if options.same_domain else who),
                *(where + "<" + i for i in ids))

    return keys


class ThreadingService:
    def __init__(self, threader: Threader) -> None:
        self.threader = threader

    async def handle(self, seq: int, env: Envelope) -> None:
        if not isinstance(env.data, MessageReceived):
            return  # rejections stay quarantined
        msg = env.data
        with structlog.contextvars.bound_contextvars(message_id=msg.message_id):
            outcome = await self.threader.thread(msg, env.time)
            if outcome is not None:
                log.info(OUTCOMES[type(outcome)], ticket_id=outcome.ticket_id,
                         method=outcome.method, confidence=outcome.confidence,
                         related=outcome.related)


async def build(settings: Settings, js: JetStreamContext) -> ThreadingService:
    index = KvIndex(js, settings.namespace)
    threader = Threader(JetStreamEventStore(js, settings.namespace), index, options(settings),
                        await shared_secret(index))
    return ThreadingService(threader)


async def run(settings: Settings) -> None:
    health.register("consumer", health.waiting("connecting to JetStream"))
    nc, js = await open_bus(settings, "tidydesk-threading")
    health.register("consumer", health.consumer(js, settings.namespace, "threading"))
    try:
        service = await build(settings, js)
        await consume(js, settings.namespace, "threading", service.handle,
                      concurrency=settings.consumer_concurrency, lane=lanes(options(settings)))
    finally:
        await close(nc)  # unacked work is redelivered to the next instance
