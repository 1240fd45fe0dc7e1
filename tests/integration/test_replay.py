"""`tidydesk replay`: a rebuild beside the live projection, swapped in under live traffic."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time

import aiohttp
import asyncpg
import pytest
from nats.aio.client import Client

from tests.conftest import Stack, eventually, free_port, mail
from tests.integration.test_projection import publish, received
from tidydesk.common import parking
from tidydesk.queue.projection import REPLAY_LOCK, Projector, rebuild


async def replay_cli(nats_url: str, database_url: str, ns: str, *args: str
                     ) -> tuple[int, str, str]:
    """`tidydesk replay` as its own process (as an operator runs it beside the service)."""
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_DATABASE_URL": database_url,
           "TIDYDESK_NAMESPACE": ns}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidydesk.cli", "replay", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for table, key in (("tickets", "id"), ("messages", "message_id"), ("events", "seq"),
                       ("rejected", "digest")):
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")
        out[table] = [tuple(r.values()) for r in rows]
    return out


async def send(stack: Stack, first: int, count: int, pause: float = 0.0) -> None:
    """`count` new tickets, every third one with a reply."""
    for i in range(first, first + count):
        sender = f"user{i}@example.com"
        await stack.intake.accept(mail(f"q{i}@example.com", f"Question {i}",
                                       subject=f"Topic {i}", sender=sender))
        if i % 3 == 0:
            await stack.intake.accept(mail(f"q{i}-re@example.com", "more", sender=sender,
                                           in_reply_to=f"q{i}@example.com"))
        await asyncio.sleep(pause)


def settled(stack: Stack, tickets: int) -> object:
    async def check() -> bool:
        rows = await stack.tickets()
        return len(rows) == tickets and all(
            r["message_count"] == (2 if int(str(r["subject"]).split()[-1]) % 3 == 0 else 1)
            for r in rows)
    return check


async def test_replay_under_live_traffic_never_shows_a_smaller_queue(
        stack: Stack, api: str, api_headers: dict[str, str], nats_url: str, database_url: str,
        ns: str) -> None:
    await send(stack, 0, 90)
    await eventually(settled(stack, 90), within=60)
    before = len(await stack.tickets())
    seen: list[int] = []
    done = asyncio.Event()

    async def read() -> None:  # SQL and HTTP readers of the live queue, all through the swap
        async with aiohttp.ClientSession(headers=api_headers) as http:
            while not done.is_set():
                seen.append(int(await stack.pool.fetchval("SELECT count(*) FROM tickets")))
                async with http.get(f"{api}/tickets?status=all&limit=1000") as r:
                    assert r.status == 200, await r.text()
                    seen.append(len((await r.json())["tickets"]))
                await asyncio.sleep(0.01)

    readers = asyncio.create_task(read())
    traffic = asyncio.create_task(send(stack, 90, 40, pause=0.05))
    stream = f"{ns.upper()}_EVENTS"
    start_seq = (await stack.js.stream_info(stream)).state.last_seq
    code, out, err = await replay_cli(nats_url, database_url, ns)
    end_seq = (await stack.js.stream_info(stream)).state.last_seq
    await traffic
    assert code == 0, err
    assert end_seq > start_seq  # events arrived while the replay ran
    found = re.search(r"^replayed stream sequences 1\.\.(\d+): (\d+) tickets rebuilt, 0 parked;"
                      r" swapped in atomically \((\d+) events/s\)$", out, re.M)
    assert found and start_seq <= int(found[1]) <= end_seq, out
    # off a terminal there is no progress bar: stderr holds only JSON log lines
    assert all(json.loads(line) for line in err.splitlines() if line.strip()), err

    await send(stack, 130, 5)  # the live projector goes on after the swap
    await eventually(settled(stack, 135), within=60)
    done.set()
    await readers
    assert min(seen) >= before and len(seen) > 20

    live = await snapshot(stack.pool)
    await rebuild(stack.js, database_url, ns)  # from scratch, traffic stopped
    assert await snapshot(stack.pool) == live
    leftovers = await stack.pool.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1::text[])",
        [f"{ns}_build", f"{ns}_old"])
    assert leftovers == 0


async def test_replay_parks_a_poison_event_and_reports_it(
        stack: Stack, database_url: str, ns: str) -> None:
    await send(stack, 0, 3)
    poison = await publish(stack.js, ns, received("nul", "a \x00 b"), "nul")

    async def four() -> bool:  # threading opens a ticket for it; only its message is lost
        return len(await stack.tickets()) == 4

    await eventually(four)
    (_, record), = await eventually(lambda: parking.records(stack.js, ns))
    assert (record.consumer, record.stream_seq) == ("queue", poison)  # the live projector's

    result = await rebuild(stack.js, database_url, ns)
    assert (result.tickets, result.parked) == (4, 1)
    assert len(await parking.records(stack.js, ns)) == 1  # known already: not parked twice
    assert await stack.pool.fetchval("SELECT count(*) FROM messages WHERE message_id = 'nul'") == 0


async def test_replay_from_seq_leaves_out_the_earlier_events(
        stack: Stack, nats_url: str, database_url: str, ns: str) -> None:
    stream = f"{ns.upper()}_EVENTS"
    await send(stack, 1, 1)
    await eventually(settled(stack, 1))
    later = (await stack.js.stream_info(stream)).state.last_seq + 1
    await send(stack, 2, 2)
    await eventually(settled(stack, 3))
    last = (await stack.js.stream_info(stream)).state.last_seq

    code, out, err = await replay_cli(nats_url, database_url, ns, "--from-seq", str(later))
    assert code == 0, err
    assert f"replayed stream sequences {later}..{last}: 2 tickets rebuilt" in out
    assert {r["subject"] for r in await stack.tickets()} == {"Topic 2", "Topic 3"}
    assert await stack.pool.fetchval("SELECT min(seq) FROM events") >= later

    code, _, err = await replay_cli(nats_url, database_url, ns, "--from-seq", str(last + 5))
    assert code == 2 and "outside the stream's sequences" in err


async def test_interrupted_replay_leaves_the_live_queue_and_the_next_one_cleans_up(
        stack: Stack, database_url: str, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await send(stack, 0, 3)
    await eventually(settled(stack, 3))
    live = await snapshot(stack.pool)

    async def crash(self: Projector, conn: object) -> int:
        raise ConnectionResetError("replay host lost")

    with monkeypatch.context() as patch:
        patch.setattr(Projector, "catch_up", crash)
        with pytest.raises(ConnectionResetError):
            await rebuild(stack.js, database_url, ns)
    assert await snapshot(stack.pool) == live
    assert await stack.pool.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1",
                                     f"{ns}_build")
    assert (await rebuild(stack.js, database_url, ns)).tickets == 3
    assert await snapshot(stack.pool) == live
    assert not await stack.pool.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1",
                                         f"{ns}_build")


@pytest.mark.parametrize("down", ["nats", "postgres"])
async def test_replay_fails_fast_on_an_unreachable_server(
        nats_url: str, database_url: str, down: str) -> None:
    nowhere = free_port()
    if down == "nats":
        nats_url = f"nats://127.0.0.1:{nowhere}"
    else:
        database_url = f"postgresql://postgres@127.0.0.1:{nowhere}/test"
    started = time.monotonic()
    code, _, err = await replay_cli(nats_url, database_url, "tnowhere")
    assert code == 2 and time.monotonic() - started < 15
    assert ("NATS at" if down == "nats" else "PostgreSQL at") in err, err


async def test_a_second_replay_of_the_namespace_is_refused(
        nc: Client, pool: asyncpg.Pool, database_url: str, ns: str) -> None:
    js = nc.jetstream()
    await publish(js, ns, received("m1"), "m1")
    async with pool.acquire() as conn:  # the first replay's session lock
        await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", REPLAY_LOCK, ns)
        try:
            with pytest.raises(RuntimeError, match="another replay"):
                await rebuild(js, database_url, ns)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", REPLAY_LOCK, ns)
    assert (await rebuild(js, database_url, ns)).last == 1
