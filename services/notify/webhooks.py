"""Standard Webhooks: one durable consumer per subscription, so a down endpoint delays only
itself. Each POST is the CloudEvent in structured mode, signed with the endpoint's secret."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from datetime import UTC, datetime

import aiohttp
import msgspec
import standardwebhooks
import structlog
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from tidydesk.common import metrics, parking, trace
from tidydesk.common.events import (
    LEGACY_SOURCE,
    Envelope,
    TicketOpened,
    decode,
    encode,
    source_for,
)
from tidydesk.notify.subscriptions import Subscription

log = structlog.get_logger()
RETRYABLE_4XX = frozenset({408, 429})
CONTENT_TYPE = "application/cloudevents+json"
# Per-ticket order. consume() goes on with the next fetched event while a failed one waits
# for its retry, so a later event of the same ticket could reach the endpoint first. With
# max_ack_pending=1 the server hands out the next event only once the previous one is acked
# or parked (and fetches one at a time: a larger fetch would wait out its timeout for events
# the server holds back). Cost, measured with a loopback endpoint answering at once, 2,000
# events, 2 cores: 1,300-1,700 events/s against 1,800-2,400/s at 1000/batch 32, i.e. one more
# NATS round trip per event. POSTs were sequential already, so a real endpoint's latency
# dominates both. A failing endpoint fails every ticket's events anyway, so holding the others
# back loses nothing; a parked event stops holding its ticket back (that is what parking is).
MAX_ACK_PENDING = 1
BATCH = 1  # a fetch of more would wait out its timeout for events the server holds back


class Rejected(parking.Permanent):
    """The endpoint refused the event (4xx): retrying the same bytes cannot help."""


def stream(ns: str) -> str:
    return f"{ns.upper()}_EVENTS"


def consumer_config(ns: str, sub: Subscription, budget: api.ConsumerConfig,
                    start_seq: int | None = None) -> api.ConsumerConfig:
    """The endpoint's consumer: the retry budget of `budget`, from new events or `start_seq`."""
    return api.ConsumerConfig(
        durable_name=sub.durable,
        description=f"webhooks to {sub.safe_url}",
        filter_subject=f"{ns}.tickets.*",
        # NEW, not ALL: the stream keeps every event forever, and replaying years of history
        # into an endpoint the moment it is configured would flood it (and hold it for hours).
        # `tidydesk webhooks redeliver ID --from-seq N` replays on purpose. Once created, the
        # durable keeps its place, so an endpoint that is down misses nothing.
        deliver_policy=(api.DeliverPolicy.NEW if start_seq is None
                        else api.DeliverPolicy.BY_START_SEQUENCE),
        opt_start_seq=start_seq,
        ack_policy=api.AckPolicy.EXPLICIT,
        max_deliver=budget.max_deliver,
        backoff=budget.backoff,
        max_ack_pending=MAX_ACK_PENDING,
    )


async def ensure_consumer(js: JetStreamContext, ns: str, sub: Subscription,
                          budget: api.ConsumerConfig) -> str:
    """Create the endpoint's consumer, or bring an existing one's budget up to date (its
    position and start policy stay: a redeliver may have set them)."""
    want = consumer_config(ns, sub, budget)
    try:
        have = (await js.consumer_info(stream(ns), sub.durable)).config
    except NotFoundError:
        await js.add_consumer(stream(ns), want)
        return sub.durable
    fields = ("description", "max_deliver", "backoff", "max_ack_pending")
    if any(getattr(have, f) != getattr(want, f) for f in fields):
        for f in fields:
            setattr(have, f, getattr(want, f))
        await js.add_consumer(stream(ns), have)
    return sub.durable


async def restart_consumer(js: JetStreamContext, ns: str, sub: Subscription,
                           budget: api.ConsumerConfig, start_seq: int) -> None:
    """Replace the endpoint's consumer by one starting at stream sequence `start_seq`."""
    await delete_consumers(js, ns, sub.durable, retry_too=False)
    await js.add_consumer(stream(ns), consumer_config(ns, sub, budget, start_seq))


async def delete_consumers(js: JetStreamContext, ns: str, durable: str,
                           retry_too: bool = True) -> None:
    """Drop an endpoint's consumer (and the one serving its `parked retry`), if they exist."""
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream(ns), durable)
    if retry_too:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(parking.parked_stream(ns), f"{durable}-retry")


class Mailboxes:
    """Ticket id -> the mailbox it came in to, read from its first event (`ticket.opened`);
    events other than that one carry the ticket id only. A bounded cache per process."""

    def __init__(self, js: JetStreamContext, ns: str, size: int = 10_000) -> None:
        self.js, self.ns, self.size = js, ns, size
        self._known: OrderedDict[str, str] = OrderedDict()

    async def of(self, env: Envelope) -> str:
        ticket_id = env.subject
        if isinstance(env.data, TicketOpened):
            mailbox = env.data.mailbox
        elif (mailbox := self._known.get(ticket_id, "")) == "":
            mailbox = await self._first(ticket_id)
        self._known[ticket_id] = mailbox
        self._known.move_to_end(ticket_id)
        while len(self._known) > self.size:
            self._known.popitem(last=False)
        return mailbox

    async def _first(self, ticket_id: str) -> str:
        try:
            msg = await self.js.get_msg(stream(self.ns), seq=1, next=True,
                                        subject=f"{self.ns}.tickets.{ticket_id}")
        except NotFoundError:
            return ""
        first = decode(msg.data or b"")
        return first.data.mailbox if isinstance(first.data, TicketOpened) else ""


class Webhook:
    """At-least-once delivery to one subscription; receivers dedupe on `webhook-id`, which
    is the CloudEvent `id` and the same on every retry."""

    def __init__(self, http: aiohttp.ClientSession, sub: Subscription, ns: str,
                 mailboxes: Mailboxes) -> None:
        self.http, self.sub, self.ns, self.mailboxes = http, sub, ns, mailboxes
        self.signer = standardwebhooks.Webhook(sub.secret) if sub.secret else None

    async def wants(self, env: Envelope) -> bool:
        """Whether the subscription's filters take this event."""
        if not self.sub.wants_type(env.type):
            return False
        return not self.sub.mailboxes or self.sub.wants_mailbox(await self.mailboxes.of(env))

    async def handle(self, seq: int, env: Envelope) -> None:
        """The consumer's handler: POST what the filters take, ack the rest unsent."""
        if await self.wants(env):
            await self.post(env)
        else:
            log.debug("webhook_filtered", consumer=self.sub.durable, type=env.type, seq=seq)

    def request(self, env: Envelope) -> tuple[bytes, dict[str, str]]:
        """Body and headers of the POST: structured mode, Standard Webhooks signature, the
        W3C `traceparent`, and no ce-* headers (receivers take those for binary mode)."""
        if env.source == LEGACY_SOURCE:  # recorded before events named their namespace
            env = msgspec.structs.replace(env, source=source_for(self.ns))
        body = encode(env)
        now = datetime.now(UTC)
        headers = {"Content-Type": CONTENT_TYPE, "webhook-id": env.id,
                   "webhook-timestamp": str(int(now.timestamp()))}
        if self.signer is not None:
            headers["webhook-signature"] = self.signer.sign(env.id, now, body.decode())
        if delivery := trace.child(env.traceparent):  # W3C header: the POST is a span too
            headers["traceparent"] = delivery
        return body, headers

    async def post(self, env: Envelope) -> None:
        body, headers = self.request(env)
        outcome = "failed"
        try:
            async with self.http.post(self.sub.url, data=body, headers=headers) as resp:
                if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                    outcome = "rejected"
                    raise Rejected(f"webhook {self.sub.durable} answered {resp.status}")
                if not 200 <= resp.status < 300:
                    raise RuntimeError(f"webhook {self.sub.durable} answered {resp.status}")
            outcome = "delivered"
        finally:
            metrics.WEBHOOKS.labels(self.sub.durable, outcome).inc()
        log.info("webhook_delivered", consumer=self.sub.durable, type=env.type,
                 ticket_id=env.subject)
