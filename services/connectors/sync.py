"""A connector as a JetStream durable consumer: each ticket event planned (port.plan) and
carried out on a Helpdesk, with what was done remembered per ticket before the ack.

The record of a tidydesk ticket is its external id plus the position (stream sequence, step)
of the last operation that went through. Events of one ticket are handled in stream order
(one event in flight: max_ack_pending=1), so a redelivered event finds its operations at or
below that position and skips them: no second ticket, no second correspondence. Only an
answer from the helpdesk that never got recorded (the process died between the two) is
left; for the create, a record written before it (`external=""`) lets the next attempt ask
the helpdesk whether it has the ticket already (`Helpdesk.find`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import msgspec
import structlog
from nats.js import JetStreamContext, api
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from tidydesk.common.events import Envelope, TicketOpened
from tidydesk.connectors.port import (
    Comment,
    Correspond,
    Create,
    Helpdesk,
    Op,
    SetStatus,
    plan,
)
from tidydesk.tickets.ticket import fold

log = structlog.get_logger()
BUDGET_FROM = "notify-mail"  # the retry budget (max_deliver, backoff) connectors share


class CreatePending(Exception):
    """An operation on a ticket whose create failed or has not finished."""


class Link(msgspec.Struct, frozen=True, kw_only=True):
    """A tidydesk ticket over there: its id and the last operation that went through."""

    external: str  # "" while the create is in flight
    seq: int
    step: int
    since: datetime | None = None  # when the create was first tried

    def done(self, seq: int, step: int) -> bool:
        return bool(self.external) and (seq, step) <= (self.seq, self.step)


class Links(Protocol):
    """tidydesk ticket id -> Link."""

    async def get(self, ticket_id: str) -> Link | None: ...

    async def put(self, ticket_id: str, link: Link) -> None: ...


class KvLinks:
    """Links in the JetStream KV bucket `{ns}_connector_<name>` (created on first use)."""

    def __init__(self, js: JetStreamContext, ns: str, name: str) -> None:
        self.js, self.bucket = js, f"{ns}_connector_{name}"
        self._kv: KeyValue | None = None

    async def _open(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(self.bucket)
            except BucketNotFoundError:
                self._kv = await self.js.create_key_value(api.KeyValueConfig(
                    bucket=self.bucket, history=1,
                    description="tidydesk ticket id -> external ticket id, last operation"))
        return self._kv

    async def get(self, ticket_id: str) -> Link | None:
        kv = await self._open()
        try:
            entry = await kv.get(ticket_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return msgspec.json.decode(entry.value, type=Link) if entry.value else None

    async def put(self, ticket_id: str, link: Link) -> None:
        await (await self._open()).put(ticket_id, msgspec.json.encode(link))


class MemoryLinks:
    """Links in a dict, for tests of the pure logic."""

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}

    async def get(self, ticket_id: str) -> Link | None:
        return self.links.get(ticket_id)

    async def put(self, ticket_id: str, link: Link) -> None:
        self.links[ticket_id] = link


class Histories(Protocol):
    """The part of the event store a connector reads (JetStreamEventStore has it)."""

    def ticket_subject(self, ticket_id: str) -> str: ...

    async def history(self, subject: str) -> list[tuple[int, Envelope]]: ...


class Connector:
    """Mirror ticket events into `helpdesk`; `handle` is a runtime.consume handler."""

    def __init__(self, store: Histories, helpdesk: Helpdesk, links: Links) -> None:
        self.store, self.helpdesk, self.links = store, helpdesk, links

    async def handle(self, seq: int, env: Envelope) -> None:
        ticket_id = env.subject
        history = await self.store.history(self.store.ticket_subject(ticket_id))
        before = fold(ticket_id, [(s, e) for s, e in history if s < seq])
        messages = {m.message_id: m for m in fold(ticket_id, history).messages}
        opening = next((e.data.message_id for _, e in history
                        if isinstance(e.data, TicketOpened)), "")
        with structlog.contextvars.bound_contextvars(ticket_id=ticket_id):
            for step, op in enumerate(plan(env.data, before, messages, opening)):
                await self.apply(seq, step, op)

    async def apply(self, seq: int, step: int, op: Op) -> None:
        """Carry out one operation unless it went through already."""
        link = await self.links.get(op.ticket_id)
        if link is not None and link.done(seq, step):
            log.info("connector_skipped", op=type(op).__name__, seq=seq, step=step)
            return
        if isinstance(op, Create):
            external = await self.create(seq, step, op, link)
        elif link is None:
            log.warning("connector_unlinked", op=type(op).__name__, seq=seq,
                        why="the ticket was opened before the connector started")
            return
        elif not link.external:  # retried, then parked: `tidydesk parked retry` after the fix
            raise CreatePending(f"ticket {op.ticket_id}: its create has not gone through")
        else:
            external = link.external
            match op:
                case Correspond():
                    await self.helpdesk.correspond(external, op)
                case Comment():
                    await self.helpdesk.comment(external, op)
                case SetStatus():
                    await self.helpdesk.set_status(external, op)
        await self.links.put(op.ticket_id, Link(external=external, seq=seq, step=step))
        log.info("connector_applied", op=type(op).__name__, external=external, seq=seq)

    async def create(self, seq: int, step: int, op: Create, link: Link | None) -> str:
        if link is not None and link.external:
            return link.external  # created by an earlier event (it cannot be opened twice)
        if link is not None and link.since is not None:
            found = await self.helpdesk.find(op, link.since)
            if found is not None:
                log.info("connector_found", external=found)
                return found
        since = link.since if link is not None and link.since else datetime.now(UTC)
        await self.links.put(op.ticket_id, Link(external="", seq=seq, step=step, since=since))
        refers = await self.links.get(op.refers_to) if op.refers_to else None
        return await self.helpdesk.create(op, refers.external if refers else None)


def consumer_config(ns: str, durable: str, budget: api.ConsumerConfig,
                    deliver: api.DeliverPolicy) -> api.ConsumerConfig:
    """One event in flight, so one ticket's operations happen in stream order."""
    return api.ConsumerConfig(
        durable_name=durable, description=f"connector {durable}",
        filter_subject=f"{ns}.tickets.*", deliver_policy=deliver,
        ack_policy=api.AckPolicy.EXPLICIT, max_deliver=budget.max_deliver,
        backoff=budget.backoff, max_ack_pending=1)


async def ensure_consumer(js: JetStreamContext, ns: str, durable: str,
                          deliver: api.DeliverPolicy = api.DeliverPolicy.NEW) -> None:
    """Create the connector's durable if it is not there (an existing one keeps its place)."""
    stream = f"{ns.upper()}_EVENTS"
    try:
        await js.consumer_info(stream, durable)
    except NotFoundError:
        budget = (await js.consumer_info(stream, BUDGET_FROM)).config
        await js.add_consumer(stream, consumer_config(ns, durable, budget, deliver))
