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
    AgentThanked,
    AutoRecorded,
    Envelope,
    Event,
    FollowupAcknowledged,
    MessageHeld,
    MessageReceived,
    MessageRejected,
    MessageThreaded,
    ReplySent,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketMerged,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    TicketSplit,
    TicketTagged,
    TicketUnmerged,
    TicketUntagged,
    encode,
    envelope,
)
from tidydesk.queue.projection import TABLES, Projector

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
    """Every projection table and the checkpoints, rows sorted."""
    return {table: sorted((tuple(r) for r in await pool.fetch(f"SELECT * FROM {table}")),
                          key=repr) for table in (*TABLES, "checkpoints")}


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


ACME, BETA = "support@acme.example", "help@beta.example"


def mail(mid: str, mailbox: str = ACME, subject: str = "Printer", reply: str = "broken"
         ) -> MessageReceived:
    return MessageReceived(message_id=mid, digest=f"d-{mid}-{mailbox}", mailbox=mailbox,
                           sender="alice@example.com", subject=subject, text=reply, reply=reply)


def opening(ticket: str, number: int, mid: str, mailbox: str = ACME,
            split_from: str | None = None) -> TicketOpened:
    return TicketOpened(ticket_id=ticket, number=number, subject="Printer",
                        requester="alice@example.com", mailbox=mailbox, message_id=mid,
                        split_from=split_from)


def decided(kind: type[TicketReopened | FollowupAcknowledged], ticket: str, mid: str
            ) -> TicketReopened | FollowupAcknowledged:
    return kind(ticket_id=ticket, message_id=mid, policy="p", version="1", confidence=1.0)


def reply(ticket: str, mid: str, *, auto: str | None = None) -> ReplySent:
    return ReplySent(ticket_id=ticket, message_id=mid, agent="bob", text="on it", sender=ACME,
                     to="alice@example.com", subject="Re: Printer", reply_to=ACME, auto=auto)


# Each line names the order it shows: the batched writes run statement by statement
# (inserts first), so every case where a later insert or a repeated update would land
# differently from one event at a time is here.
MIXED: list[Event] = [
    mail("m1"), mail("m1", subject="again"),  # the first of a (tenant, message_id) wins
    mail("m1", BETA),  # the same Message-ID in another tenant: its own row
    MessageRejected(digest="r1", reason="too big"), MessageRejected(digest="r1", reason="x"),
    opening("t1", 1, "m1"),
    MessageThreaded(ticket_id="t1", message_id="m1", method="new"),
    opening("t3", 3, "m3", BETA),  # before its mail: the language has no reply to read
    MessageThreaded(ticket_id="t3", message_id="m1", method="subject"),  # m1 again: beta's
    mail("m3", BETA, reply="프린터가 고장났어요"),
    mail("m2"),
    MessageThreaded(ticket_id="t2", message_id="m2", method="new"),  # before t2 is opened:
    opening("t2", 2, "m2"),  # its count missed it, its row matched any tenant
    MessageThreaded(ticket_id="t1", message_id="m7", method="references"),  # before m7 came
    mail("m7"),
    reply("t1", "r-auto@acme.example", auto="out-of-hours"),  # counted, no first response
    reply("t1", "r1@acme.example"), reply("t1", "r2@acme.example"),  # the first responds
    TicketSolved(ticket_id="t1"),
    decided(FollowupAcknowledged, "t1", "m1"),
    TicketClosed(ticket_id="t1"),  # keeps the solve's time
    decided(TicketReopened, "t1", "m1"),  # a second decision on m1: the last wins
    decided(FollowupAcknowledged, "t3", "m1"),  # on beta's m1, acme's stays reopened
    TicketClosed(ticket_id="t1"),  # after a reopen: its own time
    TicketClosed(ticket_id="t3"), TicketSolved(ticket_id="t3"),
    mail("m4"), MessageHeld(ticket_id="t1", message_id="m4", method="references", reason="x"),
    TicketTagged(ticket_id="t1", tag="vip", rule="r"), TicketUntagged(ticket_id="t1", tag="vip"),
    TicketTagged(ticket_id="t1", tag="vip", agent="bob"),
    TicketAssigned(ticket_id="t1", agent="bob"), TicketEscalated(
        ticket_id="t1", rule="slow", reason="late", lead="carol"),
    AgentThanked(ticket_id="t1", agent="bob", message_id="m1"),
    mail("m5"), TicketSplit(ticket_id="t1", message_id="m5", policy="p", version="1",
                            confidence=1.0, new_ticket_id="t5"),
    opening("t5", 5, "m5", split_from="t1"),
    MessageThreaded(ticket_id="t5", message_id="m5", method="split"),
    TicketMerged(ticket_id="t2", into="t1"),
    MessageThreaded(ticket_id="t1", message_id="m7", method="in-reply-to"),
    TicketUnmerged(ticket_id="t2", from_ticket="t1", status="open", message_ids=("m2",)),
    mail("m6"), AutoRecorded(message_id="m6", sender="bot@example.com", mailbox=ACME,
                             auto="auto-reply"),
    opening("t1", 9, "m1"),  # opened twice: a unique violation, parked, the rest applied
    TicketReopened(ticket_id="t3", message_id="m3", policy="p", version="1", confidence=1.0),
    TicketSolved(ticket_id="t5"),
]


@pytest.mark.parametrize("batch", [256, 7])
async def test_a_mixed_batch_projects_every_table_as_one_event_at_a_time(
        nc: Client, pool: asyncpg.Pool, other_pool: asyncpg.Pool, ns: str, batch: int) -> None:
    js = nc.jetstream()
    for minute, event in enumerate(MIXED):
        await publish(js, ns, event, minute)
    last = (await js.stream_info(f"{ns.upper()}_EVENTS")).state.last_seq
    batched, single = Projector(js, pool, ns, batch=batch), Projector(js, other_pool, ns, batch=1)
    assert await batched.run(stop_at_end=True) == last
    assert await single.run(stop_at_end=True) == last

    assert await snapshot(pool) == await snapshot(other_pool)
    assert batched.parked == single.parked == {MIXED.index(opening("t1", 9, "m1")) + 1}
    tickets = {r["id"]: r for r in await pool.fetch("SELECT * FROM tickets")}
    assert tickets["t3"]["language"] == "en"  # its reply came after it opened
    assert tickets["t2"]["message_count"] == 1  # back from t1; not the thread before it opened
    assert tickets["t1"]["solved_at"] == T0 + timedelta(minutes=MIXED.index(
        TicketClosed(ticket_id="t1"), MIXED.index(decided(TicketReopened, "t1", "m1"))))


async def test_a_message_threaded_as_it_is_inserted_keeps_the_row_of_an_earlier_batch(
        nc: Client, pool: asyncpg.Pool, other_pool: asyncpg.Pool, ns: str) -> None:
    """The thread of a message inserted in the same flush as its ticket's opening rides on
    the insert; where an earlier batch inserted that message already, it lands on that row."""
    js = nc.jetstream()
    story: list[Event] = [
        mail("m8"), mail("m8", BETA),
        TicketAssigned(ticket_id="t0", agent="bob"),  # applied alone: what came before is
        mail("m8", subject="again"), mail("m8", BETA, subject="again"),  # written already
        opening("t8", 8, "m8"), MessageThreaded(ticket_id="t8", message_id="m8", method="new"),
        mail("m9", BETA), mail("m9"), opening("t9", 9, "m9", BETA),
        MessageHeld(ticket_id="t9", message_id="m9", method="references", reason="x"),
        MessageThreaded(ticket_id="t9", message_id="m9", method="subject"),  # a second time
    ]
    for minute, event in enumerate(story):
        await publish(js, ns, event, minute)
    last = (await js.stream_info(f"{ns.upper()}_EVENTS")).state.last_seq
    assert await Projector(js, pool, ns).run(stop_at_end=True) == last
    assert await Projector(js, other_pool, ns, batch=1).run(stop_at_end=True) == last

    assert await snapshot(pool) == await snapshot(other_pool)
    rows = {(r["tenant"], r["message_id"]): tuple(r) for r in await pool.fetch(
        "SELECT tenant, message_id, subject, ticket_id, threaded_by FROM messages")}
    assert rows == {
        ("acme.example", "m8"): ("acme.example", "m8", "Printer", "t8", "new"),
        ("beta.example", "m8"): ("beta.example", "m8", "Printer", None, None),
        ("beta.example", "m9"): ("beta.example", "m9", "Printer", "t9", "subject"),
        ("acme.example", "m9"): ("acme.example", "m9", "Printer", None, None),
    }
    assert await pool.fetchval("SELECT message_count FROM tickets WHERE id = 't9'") == 1
