"""One contract per port (EventStore, Index, RawMailStore), run against every adapter:
in memory and on a real nats-server, as the eventsourcing library tests each recorder."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from tidydesk.common.events import Event, MessageThreaded, TicketOpened, TicketSolved
from tidydesk.common.memory import InMemoryEventStore, InMemoryIndex, InMemoryRawStore
from tidydesk.common.store import (
    Conflict,
    Decides,
    Index,
    JetStreamEventStore,
    JetStreamRawStore,
    KvIndex,
    RawMailStore,
)
from tidydesk.tickets.ticket import Ticket

ADAPTERS = ["memory", "jetstream"]


@dataclass
class Stores:
    """One adapter of each port; `fresh` is a second view of the same event store (another
    process's: for JetStream without this one's cache)."""

    events: Decides
    fresh: Callable[[], Decides]
    index: Index
    raw: RawMailStore


@pytest.fixture(params=ADAPTERS)
async def stores(request: pytest.FixtureRequest, nc: Client, ns: str) -> AsyncIterator[Stores]:
    if request.param == "memory":
        events = InMemoryEventStore()
        yield Stores(events, lambda: events, InMemoryIndex(), InMemoryRawStore())
        return
    js = nc.jetstream()
    yield Stores(JetStreamEventStore(js, ns), lambda: JetStreamEventStore(js, ns),
                 KvIndex(js, ns), JetStreamRawStore(js, ns))


def opened(ticket_id: str) -> TicketOpened:
    return TicketOpened(ticket_id=ticket_id, number=1, subject="Printer", requester="a@example.com",
                        mailbox="support@example.com", message_id=f"{ticket_id}@example.com")


def threaded(ticket_id: str, message_id: str) -> MessageThreaded:
    return MessageThreaded(ticket_id=ticket_id, message_id=message_id, method="test")


# -- EventStore ----------------------------------------------------------------------------

async def test_an_unknown_ticket_loads_empty_at_version_zero(stores: Stores) -> None:
    ticket = await stores.events.load("nope")
    assert (ticket.ticket_id, ticket.version, ticket.status, ticket.messages) == (
        "nope", 0, "new", [])


async def test_appended_events_fold_into_the_loaded_ticket(stores: Stores) -> None:
    version = await stores.events.append(
        "t1", [(opened("t1"), "opened"), (threaded("t1", "m1"), "m1")], 0)
    for view in (stores.events, stores.fresh()):
        ticket = await view.load("t1")
        assert ticket.version == version > 0
        assert (ticket.status, ticket.subject) == ("open", "Printer")
        assert [m.message_id for m in ticket.messages] == ["m1"]
    later = await stores.events.append("t1", [(TicketSolved(ticket_id="t1"), "solved")], version)
    assert later > version
    assert (await stores.fresh().load("t1")).status == "solved"
    assert (await stores.events.load("t1")).status == "solved"


async def test_an_append_at_a_stale_version_is_a_conflict(stores: Stores) -> None:
    first = await stores.events.append("t1", [(opened("t1"), "opened")], 0)
    await stores.events.append("t1", [(threaded("t1", "m1"), "m1")], first)
    with pytest.raises(Conflict):
        await stores.events.append("t1", [(threaded("t1", "m2"), "m2")], first)
    with pytest.raises(Conflict):
        await stores.fresh().append("t1", [(threaded("t1", "m3"), "m3")], 0)
    assert [m.message_id for m in (await stores.fresh().load("t1")).messages] == ["m1"]


async def test_a_retried_append_of_what_landed_is_a_no_op(stores: Stores) -> None:
    first = await stores.events.append("t1", [(opened("t1"), "opened")], 0)
    second = await stores.events.append("t1", [(threaded("t1", "m1"), "m1")], first)
    assert await stores.fresh().append("t1", [(threaded("t1", "m1"), "m1")], first) == second
    ticket = await stores.events.load("t1")
    assert (ticket.version, [m.message_id for m in ticket.messages]) == (second, ["m1"])


async def test_tickets_are_independent_and_versions_grow(stores: Stores) -> None:
    a = await stores.events.append("ta", [(opened("ta"), "opened")], 0)
    b = await stores.events.append("tb", [(opened("tb"), "opened")], 0)
    a2 = await stores.events.append("ta", [(threaded("ta", "m1"), "m1")], a)
    assert a < b < a2
    assert (await stores.fresh().load("tb")).version == b
    assert [m.message_id for m in (await stores.fresh().load("tb")).messages] == []


async def test_concurrent_decisions_each_see_fresh_state_and_none_is_lost(
        stores: Stores) -> None:
    await stores.events.append("t1", [(opened("t1"), "opened")], 0)
    views = [stores.events, stores.fresh()]

    async def writer(i: int) -> list[Event]:
        def decide(ticket: Ticket) -> list[tuple[Event, str]]:
            position = len(ticket.messages)  # depends on the state seen
            return [(MessageThreaded(ticket_id="t1", message_id=f"m{i}", method="test",
                                     confidence=position), f"m{i}")]
        return await views[i % 2].decide("t1", decide)

    decided = await asyncio.gather(*(writer(i) for i in range(8)))
    assert all(len(d) == 1 for d in decided)
    ticket = await stores.fresh().load("t1")
    assert [m.confidence for m in ticket.messages] == list(range(8))
    assert sorted(m.message_id for m in ticket.messages) == sorted(f"m{i}" for i in range(8))


async def test_a_decision_of_nothing_appends_nothing(stores: Stores) -> None:
    version = await stores.events.append("t1", [(opened("t1"), "opened")], 0)
    assert await stores.events.decide("t1", lambda ticket: []) == []
    assert (await stores.fresh().load("t1")).version == version


# -- Index ---------------------------------------------------------------------------------

async def test_index_get_put_and_a_missing_key(stores: Stores) -> None:
    assert await stores.index.get("m:acme|<a@b>") is None
    await stores.index.put("m:acme|<a@b>", "t1|acme")
    await stores.index.put("m:acme|<a@b>", "t2|acme")
    assert await stores.index.get("m:acme|<a@b>") == "t2|acme"


async def test_index_claim_keeps_the_first_value(stores: Stores) -> None:
    results = await asyncio.gather(*(stores.index.claim("k", f"t{i}") for i in range(6)))
    winner = await stores.index.get("k")
    assert winner is not None and set(results) == {winner}


async def test_index_update_loses_no_concurrent_change(stores: Stores) -> None:
    def add(value: str | None) -> str:
        return str(int(value or "0") + 1)

    await asyncio.gather(*(stores.index.update("counter", add) for _ in range(10)))
    assert await stores.index.get("counter") == "10"


async def test_index_numbers_are_unique_and_grow(stores: Stores) -> None:
    numbers = [await stores.index.next_number(f"t{i}") for i in range(3)]
    numbers += await asyncio.gather(*(stores.index.next_number(f"u{i}") for i in range(5)))
    assert numbers[:3] == sorted(numbers[:3]) and len(set(numbers)) == 8


# -- RawMailStore --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 2_000, 3 * 2**20 // 2], ids=["empty", "2kB", "1.5MiB"])
async def test_raw_bytes_come_back_by_their_sha256(stores: Stores, size: int) -> None:
    raw = (b"From: a@example.com\r\nSubject: x\r\n\r\n" + bytes(range(256)) * 8000)[:size]
    digest = await stores.raw.put(raw)
    assert digest == hashlib.sha256(raw).hexdigest()
    assert await stores.raw.put(raw) == digest  # a second put (a redelivery) changes nothing
    assert await stores.raw.get(digest) == raw


async def test_raw_get_of_an_unknown_digest_is_none(stores: Stores) -> None:
    assert await stores.raw.get(hashlib.sha256(b"never stored").hexdigest()) is None


# -- the JetStream raw store's two places ---------------------------------------------------

async def test_a_small_mail_is_one_message_and_a_big_one_an_object(nc: Client, ns: str) -> None:
    js = nc.jetstream()
    raw = JetStreamRawStore(js, ns)
    small, big = b"x" * 1000, b"y" * (raw.inline_max() + 1)
    for mail in (small, small, big):
        await raw.put(mail)
    assert (await js.stream_info(raw.stream)).state.messages == 1  # the redelivery deduped
    obs = await js.object_store(raw.bucket)
    assert (await obs.get_info(hashlib.sha256(big).hexdigest())).size == len(big)
    with pytest.raises(NotFoundError):
        await obs.get_info(hashlib.sha256(small).hexdigest())


async def test_mail_stored_in_the_object_store_before_is_still_found(
        nc: Client, ns: str) -> None:
    js = nc.jetstream()
    raw = JetStreamRawStore(js, ns)
    mail = b"From: a@example.com\r\n\r\nkept from an older version"
    digest = hashlib.sha256(mail).hexdigest()
    await (await js.object_store(raw.bucket)).put(digest, mail)  # as RawStore.put did
    assert await raw.get(digest) == mail
