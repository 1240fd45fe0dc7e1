"""The JetStream event store against a real nats-server: ordering and idempotency."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client

from tidydesk.common.events import Event, MessageRejected, MessageThreaded, TicketOpened
from tidydesk.common.store import Conflict, JetStreamEventStore
from tidydesk.tickets.ticket import Ticket


def opened(ticket_id: str) -> TicketOpened:
    return TicketOpened(ticket_id=ticket_id, number=1, subject="s", requester="a@example.com",
                        mailbox="support@example.com", message_id="m0")


async def test_concurrent_writers_serialise_on_one_ticket(nc: Client, ns: str) -> None:
    store = JetStreamEventStore(nc.jetstream(), ns)
    await store.append("t1", [(opened("t1"), "opened")], 0)

    async def writer(i: int) -> None:
        # each decision depends on the state it saw: the position it thinks it writes at
        def decide(ticket: Ticket) -> list[tuple[Event, str]]:
            return [(MessageThreaded(ticket_id="t1", message_id=f"m{i}", method="test",
                                     confidence=len(ticket.messages)), f"m{i}")]
        await store.decide("t1", decide)

    await asyncio.gather(*(writer(i) for i in range(12)))
    ticket = await store.load("t1")
    positions = [m.confidence for m in ticket.messages]
    assert positions == list(range(12)), "a writer decided on stale state"
    assert sorted(m.message_id for m in ticket.messages) == sorted(f"m{i}" for i in range(12))


async def test_stale_expected_sequence_is_a_conflict(nc: Client, ns: str) -> None:
    store = JetStreamEventStore(nc.jetstream(), ns)
    seq = await store.append("t2", [(opened("t2"), "opened")], 0)
    threaded = MessageThreaded(ticket_id="t2", message_id="x", method="test")
    await store.append("t2", [(threaded, "x")], seq)
    with pytest.raises(Conflict):
        await store.append("t2", [(MessageThreaded(ticket_id="t2", message_id="y",
                                                   method="test"), "y")], seq)


async def test_retried_publish_is_not_duplicated(nc: Client, ns: str) -> None:
    store = JetStreamEventStore(nc.jetstream(), ns)
    first = await store.append("t3", [(opened("t3"), "opened")], 0)
    again = await store.append("t3", [(opened("t3"), "opened")], 0)  # lost ack, retried
    assert again == first
    assert len(await store.history(store.ticket_subject("t3"))) == 1


async def test_intake_event_recorded_once_even_past_the_dedupe_window(nc: Client, ns: str
                                                                       ) -> None:
    store = JetStreamEventStore(nc.jetstream(), ns)
    event = MessageRejected(digest="d" * 64, reason="test")
    assert await store.record_intake(event, "k1") is True
    assert await store.record_intake(event, "k1") is False
    # a different event id (as after the 2-minute Msg-Id window) is refused by the subject
    other = MessageRejected(digest="e" * 64, reason="other bytes, same Message-ID")
    assert await store.record_intake(other, "k1") is False
    assert len(await store.history(f"{ns}.inbound.k1")) == 1


async def test_retried_append_after_a_lost_ack_keeps_the_cache_right(nc: Client, ns: str
                                                                      ) -> None:
    store = JetStreamEventStore(nc.jetstream(), ns)
    seq = await store.append("t4", [(opened("t4"), "opened")], 0)
    threaded = MessageThreaded(ticket_id="t4", message_id="x", method="test")
    await store.append("t4", [(threaded, "x")], seq)
    # the same append again at the old position (its ack was lost): recognised, not doubled
    await store.append("t4", [(threaded, "x")], seq)
    ticket = await store.load("t4")
    assert [m.message_id for m in ticket.messages] == ["x"]
    assert ticket == await JetStreamEventStore(nc.jetstream(), ns).load("t4")


async def test_cache_is_bounded_and_long_reads_leave_no_consumer(nc: Client, ns: str) -> None:
    js = nc.jetstream()
    store = JetStreamEventStore(js, ns, cache_size=2)
    consumers = (await js.stream_info(store.stream)).state.consumer_count
    for tid in ("a", "b", "c"):
        seq = await store.append(tid, [(opened(tid), "opened")], 0)
        for i in range(20):  # longer than a few single gets: read by a consumer
            seq = await store.append(tid, [(MessageThreaded(
                ticket_id=tid, message_id=f"m{i}", method="test"), f"m{i}")], seq)
    cold = JetStreamEventStore(js, ns, cache_size=2)
    for tid in ("a", "b", "c"):
        assert len((await cold.load(tid)).messages) == 20
    assert len(store._cache) == len(cold._cache) == 2

    async def cleaned() -> bool:
        return (await js.stream_info(store.stream)).state.consumer_count == consumers

    for _ in range(100):
        if await cleaned():
            break
        await asyncio.sleep(0.05)
    assert await cleaned(), "a replay consumer was left behind"
