"""Batched projection writes: a batch of any size projects exactly what one event at a time does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from tidydesk.common import db
from tidydesk.common.events import (
    Envelope,
    Event,
    MessageReceived,
    MessageThreaded,
    TicketMerged,
    TicketOpened,
    TicketSolved,
    encode,
    envelope,
)
from tidydesk.queue.projection import Projector

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def other_pool(database_url: str, ns: str) -> AsyncIterator[asyncpg.Pool]:
    """A second projection schema beside the `pool` fixture's."""
    p = await db.connect(database_url, f"{ns}_b", attempts=3)
    await db.migrate(p)
    yield p
    await p.execute(f'DROP SCHEMA "{ns}_b" CASCADE')
    await p.close()


async def publish(js: JetStreamContext, ns: str, event: Event, minutes: int) -> None:
    """An event at T0 + minutes, on its ticket's subject (intake events on inbound)."""
    ticket = getattr(event, "ticket_id", None)
    key = f"{type(event).__name__}-{minutes}"
    env = envelope(event, subject=ticket or key, key=key)
    env = Envelope(id=env.id, source=env.source, type=env.type, subject=env.subject,
                   time=T0 + timedelta(minutes=minutes), data=env.data)
    subject = f"{ns}.tickets.{ticket}" if ticket else f"{ns}.inbound.{key}"
    await js.publish(subject, encode(env))


async def story(js: JetStreamContext, ns: str) -> None:
    """Two tickets, one merged into the other; one event carries a time before its
    predecessor's (clocks of different processes), so the order of writes shows."""
    for n, ticket in enumerate(("t1", "t2"), start=1):
        mid = f"{ticket}@example.com"
        await publish(js, ns, MessageReceived(
            message_id=mid, digest=mid, mailbox="support@acme.example",
            sender="alice@example.com", subject="Printer", text="broken"), n)
        await publish(js, ns, TicketOpened(
            ticket_id=ticket, number=n, subject="Printer", requester="alice@example.com",
            mailbox="support@acme.example", message_id=mid), n)
        await publish(js, ns, MessageThreaded(ticket_id=ticket, message_id=mid, method="new"), n)
    await publish(js, ns, TicketSolved(ticket_id="t2"), 30)  # later than the merge below
    await publish(js, ns, TicketMerged(ticket_id="t1", into="t2"), 20)
    await publish(js, ns, TicketSolved(ticket_id="t1"), 40)


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[tuple[object, ...]]]:
    return {
        "tickets": [tuple(r) for r in await pool.fetch("SELECT * FROM tickets ORDER BY id")],
        "messages": [tuple(r) for r in await pool.fetch(
            "SELECT * FROM messages ORDER BY tenant, message_id")],
        "events": [tuple(r) for r in await pool.fetch("SELECT * FROM events ORDER BY seq")],
    }


async def test_one_batch_projects_what_one_event_at_a_time_does(
        nc: Client, pool: asyncpg.Pool, other_pool: asyncpg.Pool, ns: str) -> None:
    js = nc.jetstream()
    await story(js, ns)
    last = (await js.stream_info(f"{ns.upper()}_EVENTS")).state.last_seq
    assert await Projector(js, pool, ns, batch=256).run(stop_at_end=True) == last
    assert await Projector(js, other_pool, ns, batch=1).run(stop_at_end=True) == last

    batched, single = await snapshot(pool), await snapshot(other_pool)
    assert batched == single
    assert len(batched["events"]) == 7  # every ticket event has its row, intake ones none
    updated = {r["id"]: r["updated_at"] for r in await pool.fetch(
        "SELECT id, updated_at FROM tickets")}
    # t2: its solve (minute 30), then the merge into it (minute 20) set it, in that order
    assert updated == {"t1": T0 + timedelta(minutes=40), "t2": T0 + timedelta(minutes=20)}
