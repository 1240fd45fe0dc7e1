"""Cached and batched ticket loads against a real nats-server: same state as a plain fold."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from tidydesk.common.events import (
    Event,
    FollowupAcknowledged,
    MessageThreaded,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    TicketSplit,
    decode,
    encode,
    envelope,
)
from tidydesk.common.store import Conflict, JetStreamEventStore, OneRead, close, connect
from tidydesk.tickets.ticket import Ticket, fold


def event(tid: str, i: int) -> tuple[Event, str]:
    """The i-th event of a ticket: opened first, then a mix that touches every fold field."""
    if i == 0:
        return TicketOpened(ticket_id=tid, number=7, subject="Printer", requester="a@x.example",
                            mailbox="support@x.example", message_id="m0"), "opened"
    kind = i % 5
    if kind == 1:
        return MessageThreaded(ticket_id=tid, message_id=f"m{i}", method="test",
                               sender=f"s{i % 3}@x.example", reply=f"text {i}"), f"m{i}"
    if kind == 2:
        return TicketSolved(ticket_id=tid, agent="kim"), f"solved{i}"
    decision = {"ticket_id": tid, "message_id": f"m{i}", "policy": "p", "version": "1",
                "confidence": 0.5}
    if kind == 3:
        return TicketReopened(**decision), f"reopen{i}"
    if kind == 4:
        return TicketSplit(**decision, new_ticket_id=f"n{i}"), f"split{i}"
    return FollowupAcknowledged(**decision), f"ack{i}"


async def write(store: JetStreamEventStore, tid: str, start: int, count: int) -> None:
    for i in range(start, start + count):
        await store.decide(tid, lambda t, i=i: [event(tid, i)])


async def reference(store: JetStreamEventStore, tid: str) -> Ticket:
    """The ticket folded from one get per event (the load before the cache), no cache."""
    history, seq = [], 1
    while True:
        try:
            msg = await store.js.get_msg(store.stream, seq=seq, subject=store.ticket_subject(tid),
                                         next=True)
        except NotFoundError:
            return fold(tid, history)
        assert msg.seq is not None and msg.data is not None
        history.append((msg.seq, decode(msg.data)))
        seq = msg.seq + 1


@pytest.fixture
async def other(nats_url: str) -> AsyncIterator[Client]:
    """A second connection: another store instance, as in another process."""
    client = await connect(nats_url, "tidydesk-tests-other")
    yield client
    await close(client)


@pytest.mark.parametrize("events", [0, 1, 5, 300])
async def test_cached_load_equals_a_plain_fold(nc: Client, ns: str, events: int) -> None:
    writer = JetStreamEventStore(nc.jetstream(), ns)
    await write(writer, "t", 0, events)
    expected = await reference(writer, "t")
    assert expected.version > 0 or events == 0
    reader = JetStreamEventStore(nc.jetstream(), ns)
    assert await reader.load("t") == expected  # cold: batched read
    assert await reader.load("t") == expected  # warm: one round trip
    assert await writer.load("t") == expected  # cached from its own appends
    # incremental: a reader that saw part of the history reads only the rest
    await write(writer, "t", events, 3)
    assert await reader.load("t") == await reference(writer, "t")
    assert len(await reader.history(reader.ticket_subject("t"))) == events + 3


async def test_changing_a_loaded_ticket_does_not_change_the_cache(nc: Client, ns: str) -> None:
    store = JetStreamEventStore(nc.jetstream(), ns)
    await write(store, "t", 0, 3)
    ticket = await store.load("t")
    ticket.messages.clear()
    ticket.status = "bogus"
    assert await store.load("t") == await reference(store, "t")


async def test_two_stores_appending_alternately_lose_nothing(nc: Client, other: Client,
                                                             ns: str) -> None:
    stores = [JetStreamEventStore(nc.jetstream(), ns), JetStreamEventStore(other.jetstream(), ns)]
    await stores[0].append("t", [event("t", 0)], 0)

    async def writer(store: JetStreamEventStore, i: int) -> None:
        def decide(ticket: Ticket) -> list[tuple[Event, str]]:  # position it thinks it writes at
            return [(MessageThreaded(ticket_id="t", message_id=f"m{i}", method="test",
                                     confidence=len(ticket.messages)), f"m{i}")]
        await store.decide("t", decide)

    for round_ in range(5):  # alternately, then all at once from both connections
        for i in range(4):
            await writer(stores[i % 2], round_ * 20 + i)
        await asyncio.gather(*(writer(stores[i % 2], round_ * 20 + 4 + i) for i in range(16)))
    expected = await reference(stores[0], "t")
    assert [m.confidence for m in expected.messages] == list(range(100)), "decided on stale state"
    assert {m.message_id for m in expected.messages} == {
        f"m{r * 20 + i}" for r in range(5) for i in range(20)}
    for store in stores:
        assert await store.load("t") == expected


async def test_a_conflict_refreshes_the_cached_ticket(nc: Client, other: Client, ns: str) -> None:
    mine, theirs = JetStreamEventStore(nc.jetstream(), ns), JetStreamEventStore(
        other.jetstream(), ns)
    await write(mine, "t", 0, 2)
    stale = await mine.load("t")
    await write(theirs, "t", 2, 1)
    with pytest.raises(Conflict):
        await mine.append("t", [event("t", 3)], stale.version)
    fresh = await mine.load("t")
    assert fresh == await reference(theirs, "t") and fresh.version > stale.version
    await mine.append("t", [event("t", 3)], fresh.version)
    assert await theirs.load("t") == await mine.load("t") == await reference(mine, "t")


async def test_cache_is_not_used_after_another_process_appended(nc: Client, nats_url: str,
                                                                 ns: str) -> None:
    store = JetStreamEventStore(nc.jetstream(), ns)
    await write(store, "t", 0, 2)
    before = await store.load("t")
    script = textwrap.dedent(f"""
        import asyncio
        from tidydesk.common.events import MessageThreaded
        from tidydesk.common.store import JetStreamEventStore, close, connect

        async def main():
            nc = await connect({nats_url!r}, "other-process")
            store = JetStreamEventStore(nc.jetstream(), {ns!r})
            await store.decide("t", lambda t: [(MessageThreaded(
                ticket_id="t", message_id="elsewhere", method="test"), "elsewhere")])
            await close(nc)

        asyncio.run(main())
    """)
    await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], check=True,
                            timeout=60, env={**os.environ, "TIDYDESK_LOG_LEVEL": "error"})
    after = await store.load("t")
    assert after.version > before.version and after.has_message("elsewhere")
    assert after == await reference(store, "t")


async def test_one_read_per_unit_decides_again_on_fresh_state(nc: Client, other: Client,
                                                               ns: str) -> None:
    """Within a unit a ticket is read once; the append's expected sequence still catches
    another writer, and the retry reads the ticket afresh."""
    mine = OneRead(JetStreamEventStore(nc.jetstream(), ns))
    theirs = JetStreamEventStore(other.jetstream(), ns)
    await write(theirs, "t", 0, 2)
    seen: list[int] = []

    def decide(ticket: Ticket) -> list[tuple[Event, str]]:
        seen.append(ticket.version)
        return [event("t", 3)]

    with mine.unit():
        first = await mine.load("t")
        await write(theirs, "t", 2, 1)
        assert await mine.load("t") == first  # not read again
        await mine.decide("t", decide)
    assert seen[0] == first.version and len(seen) == 2 and seen[1] > first.version
    assert await mine.load("t") == await reference(theirs, "t")


async def test_events_without_an_expected_sequence_header_load_in_full(nc: Client,
                                                                        ns: str) -> None:
    """Events published without the header (another tool, a replay generator) are read by
    the gap reader, not taken as following the cached state."""
    store = JetStreamEventStore(nc.jetstream(), ns)
    await write(store, "t", 0, 2)
    await store.load("t")
    for i in (2, 3):
        e, key = event("t", i)
        await nc.jetstream().publish(store.ticket_subject("t"), encode(envelope(
            e, subject="t", key=key)))
    assert await store.load("t") == await reference(store, "t")


async def test_delivered_events_extend_the_cache_without_a_read(nc: Client, ns: str) -> None:
    """A consumer that passes every event of a ticket to `delivered` has it as a plain fold
    has it; an event whose predecessor it missed gives None (the caller loads)."""
    writer = JetStreamEventStore(nc.jetstream(), ns)
    await write(writer, "t", 0, 6)
    reader = JetStreamEventStore(nc.jetstream(), ns)
    subject, seq, states = reader.ticket_subject("t"), 1, []
    while True:
        try:
            msg = await reader.js.get_msg(reader.stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        assert msg.seq is not None and msg.data is not None
        after = int((msg.headers or {})["Nats-Expected-Last-Subject-Sequence"])
        states.append(reader.delivered("t", msg.seq, decode(msg.data), after))
        seq = msg.seq + 1
    assert len(states) == 6 and None not in states
    assert states[-1] == await reference(writer, "t")
    late = JetStreamEventStore(nc.jetstream(), ns)  # joined after the first events
    last = await late.js.get_msg(late.stream, subject=subject)
    assert last.seq is not None and last.data is not None
    prior = int((last.headers or {})["Nats-Expected-Last-Subject-Sequence"])
    assert late.delivered("t", last.seq, decode(last.data), prior) is None
