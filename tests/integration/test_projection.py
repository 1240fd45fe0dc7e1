"""The queue projector on real servers: poison events are parked, transient failures are not."""

from __future__ import annotations

import argparse
import asyncio
from functools import partial
from pathlib import Path

import asyncpg
from nats.aio.client import Client
from nats.js import JetStreamContext

from tests.conftest import eventually
from tidydesk.common import db, parking
from tidydesk.common.events import (
    AgentThanked,
    Event,
    MessageReceived,
    TicketOpened,
    decode,
    encode,
    envelope,
)
from tidydesk.queue.projection import Projector, is_poison


async def publish(js: JetStreamContext, ns: str, event: Event, key: str) -> int:
    """An event straight onto the stream, bypassing intake and threading."""
    channel = "tickets" if isinstance(event, TicketOpened) else "inbound"
    env = envelope(event, subject=key, key=key)
    return (await js.publish(f"{ns}.{channel}.{key}", encode(env))).seq


def received(message_id: str, text: str = "hello") -> MessageReceived:
    return MessageReceived(message_id=message_id, digest=message_id, mailbox="support@acme.example",
                           sender="alice@example.com", subject="Printer", text=text)


def opened(ticket_id: str, number: int) -> TicketOpened:
    return TicketOpened(ticket_id=ticket_id, number=number, subject="Printer",
                        requester="alice@example.com", mailbox="support@acme.example",
                        message_id=f"{ticket_id}@example.com")


async def test_poison_events_in_a_batch_are_parked_and_the_rest_applied(
        nc: Client, pool: asyncpg.Pool, ns: str) -> None:
    js = nc.jetstream()
    await publish(js, ns, received("m1"), "m1")
    nul = await publish(js, ns, received("m2", "bad \x00 byte"), "m2")  # PostgreSQL refuses NUL
    await publish(js, ns, opened("t1", 1), "t1")
    huge = await publish(js, ns, opened("t2", 2**70), "t2")  # out of bigint range
    garbage = (await js.publish(f"{ns}.inbound.junk", b"not an event")).seq
    last = await publish(js, ns, received("m3"), "m3")

    projector = Projector(js, pool, ns)
    assert await projector.run(stop_at_end=True) == last  # one batch: all six fit
    assert await projector.checkpoint() == last
    assert [r["message_id"] for r in await pool.fetch(
        "SELECT message_id FROM messages ORDER BY 1")] == ["m1", "m3"]
    assert [r["id"] for r in await pool.fetch("SELECT id FROM tickets")] == ["t1"]
    rows = {r.stream_seq: r for _, r in await parking.records(js, ns)}
    assert sorted(rows) == sorted(projector.parked) == [nul, huge, garbage]
    assert {r.consumer for r in rows.values()} == {"queue"}
    assert "CharacterNotInRepertoire" in rows[nul].error
    assert "undecodable" in rows[garbage].error

    # nothing was fixed: `tidydesk parked retry` runs the projector's handler and fails again
    retries = asyncio.create_task(parking.serve_retries(js, ns, "queue", projector.retry))
    try:
        record_seq = next(s for s, r in await parking.records(js, ns) if r.stream_seq == nul)
        args = argparse.Namespace(action="retry", id=record_seq)
        assert await asyncio.wait_for(parking._run(nc, ns, args), 10) == 1
        again = [r for _, r in await parking.records(js, ns) if r.stream_seq == nul]
        assert [r.attempts for r in again] == [2]
        assert await projector.checkpoint() == last
        assert await pool.fetchval("SELECT count(*) FROM messages") == 2
    finally:
        retries.cancel()


async def test_parked_retry_applies_the_event_without_touching_the_checkpoint(
        nc: Client, pool: asyncpg.Pool, ns: str) -> None:
    js = nc.jetstream()
    await publish(js, ns, opened("t1", 1), "t1")
    clash = await publish(js, ns, opened("t2", 1), "t2")  # the same number: unique violation
    projector = Projector(js, pool, ns)
    await projector.run(stop_at_end=True)
    (record_seq, record), = await parking.records(js, ns)
    assert record.stream_seq == clash and "UniqueViolation" in record.error

    await pool.execute("UPDATE tickets SET number = 100 WHERE id = 't1'")  # the operator's fix
    retries = asyncio.create_task(parking.serve_retries(js, ns, "queue", projector.retry))
    try:
        args = argparse.Namespace(action="retry", id=record_seq)
        assert await asyncio.wait_for(parking._run(nc, ns, args), 10) == 0
    finally:
        retries.cancel()
    assert await parking.records(js, ns) == []
    assert {r["id"] for r in await pool.fetch("SELECT id FROM tickets")} == {"t1", "t2"}
    assert await projector.checkpoint() == clash


async def test_lost_connection_mid_batch_is_not_parked_and_the_restart_applies_it(
        nc: Client, pool: asyncpg.Pool, ns: str, database_url: str) -> None:
    js = nc.jetstream()
    for i in range(3):
        last = await publish(js, ns, received(f"m{i}"), f"m{i}")
    blocker = await asyncpg.connect(database_url, server_settings={"search_path": ns})
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        projector = Projector(js, pool, ns)
        task = asyncio.create_task(projector.run())

        async def stuck() -> int | None:  # the projector's backend, waiting inside its batch
            pid: int | None = await pool.fetchval(  # not in blocker's transaction: a snapshot
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'INSERT INTO messages%' AND pid <> pg_backend_pid()")
            return pid

        pid = await eventually(stuck)
        await blocker.execute("SELECT pg_terminate_backend($1)", pid)
        await tx.rollback()
        await asyncio.wait([task], timeout=10)
        assert task.done() and not is_poison(task.exception() or Exception())
    finally:
        await blocker.close()
    assert await parking.records(js, ns) == [] and projector.parked == set()
    assert await projector.checkpoint() == 0
    assert await Projector(js, pool, ns).run(stop_at_end=True) == last
    assert await pool.fetchval("SELECT count(*) FROM messages") == 3


def test_poison_is_data_and_transient_is_the_server() -> None:
    from asyncpg import exceptions as pg

    assert is_poison(pg.CharacterNotInRepertoireError("NUL"))
    assert is_poison(pg.UniqueViolationError("dup"))
    assert is_poison(ValueError("encode"))
    for transient in (pg.AdminShutdownError("bye"), pg.CannotConnectNowError("starting"),
                      pg.ConnectionDoesNotExistError("gone"), pg.UndefinedTableError("gone"),
                      pg.TooManyConnectionsError("full"), ConnectionResetError(),
                      pg.InvalidCachedStatementError("plan")):
        assert not is_poison(transient), transient


async def test_a_failed_batch_is_applied_again_and_each_culprit_parked_once(
        nc: Client, pool: asyncpg.Pool, ns: str) -> None:
    js = nc.jetstream()
    good = [await publish(js, ns, received(f"m{i}"), f"m{i}") for i in range(40)]
    garbage = (await js.publish(f"{ns}.inbound.junk", b"not an event")).seq  # before the
    nul = await publish(js, ns, received("bad", "a \x00 b"), "bad")  # batch fails on the NUL
    last = await publish(js, ns, received("late"), "late")

    projector = Projector(js, pool, ns)  # one batch: it fails whole, then is bisected
    assert await projector.run(stop_at_end=True) == last
    records = [r.stream_seq for _, r in await parking.records(js, ns)]
    assert sorted(records) == sorted(projector.parked) == [garbage, nul]  # once each
    assert await pool.fetchval("SELECT count(*) FROM messages") == len(good) + 1


async def test_the_live_projector_applies_what_arrives_while_it_waits(
        nc: Client, pool: asyncpg.Pool, ns: str) -> None:
    js = nc.jetstream()
    for i in range(10):
        await publish(js, ns, received(f"before{i}"), f"before{i}")
    projector = Projector(js, pool, ns, batch=4)  # the backlog takes several batches
    task = asyncio.create_task(projector.run())
    try:
        async def count() -> int | None:
            n = int(await pool.fetchval("SELECT count(*) FROM messages"))
            return n if n == 10 else None

        async def projected(message_id: str) -> bool:
            return bool(await pool.fetchval("SELECT 1 FROM messages WHERE message_id = $1",
                                            message_id))

        await eventually(count)
        for i in range(9):  # one at a time into a waiting pull, then a burst
            last = await publish(js, ns, received(f"after{i}"), f"after{i}")
            if i < 3:
                await eventually(partial(projected, f"after{i}"))

        async def caught_up() -> int | None:
            return await projector.checkpoint() == last or None

        await eventually(caught_up)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await pool.fetchval("SELECT count(*) FROM messages") == 19


async def test_only_a_rebuild_commits_without_waiting_for_the_wal(
        nc: Client, pool: asyncpg.Pool, ns: str) -> None:
    js = nc.jetstream()
    default = await pool.fetchval("SHOW synchronous_commit")
    for durable, inside in ((True, default), (False, "off")):
        async with pool.acquire() as conn:
            async with conn.transaction():
                await Projector(js, pool, ns, durable=durable).apply_batch(conn, [], 0)
                assert await conn.fetchval("SHOW synchronous_commit") == inside
            assert await conn.fetchval("SHOW synchronous_commit") == default  # LOCAL only


async def test_event_rows_of_before_the_json_column_stay_readable(
        database_url: str, ns: str, tmp_path: Path) -> None:
    for path in sorted(db.MIGRATIONS.glob("00[1-3]_*.sql")):  # the schema as it was
        (tmp_path / path.name).write_text(path.read_text())
    schema = f"{ns}_old"
    old = await db.connect(database_url, schema, attempts=3)
    try:
        await db.migrate(old, tmp_path)
        env = envelope(AgentThanked(ticket_id="t1", agent="ann@acme", message_id="m1"),
                       subject="t1", key="k")
        await old.execute("INSERT INTO events VALUES (1, $1, $2, 't1', $3, $4::jsonb)",
                          env.id, env.type, env.time, encode(env).decode())
        assert "004_events_as_received" in await db.migrate(old)
        row = await old.fetchrow("SELECT data::text AS data, data->'data'->>'agent' AS agent"
                                 " FROM events")
        assert row is not None
        assert row["agent"] == "ann@acme"
        assert decode(row["data"].encode()) == env
    finally:
        await old.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await old.close()
