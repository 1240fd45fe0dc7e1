"""Read-side speed: GET /stats, GET /customers/{address} and GET /tickets?tag= over a seeded
projection.

    .venv/bin/python -m bench.stats [--tickets 20000]

The projection tables of a fresh namespace are filled straight with SQL (no events on the
bus): per ticket `ticket.opened`, `message.threaded`, `reply.sent` and `ticket.solved` rows
in `events`, spread over the last 30 days, one in ten reopened, one in five acknowledged
with `agent.thanked`, one in three tagged, 200 requesters; the mailbox has business hours,
so /stats computes business seconds for every ticket too. The `events` rows carry only what
/stats reads (type, time, the kudos agent), not whole envelopes, so GET /events is left out.
Then each request runs through
the real HTTP API (aiohttp, the guard, a token) a few times; the median is printed.
Prints Markdown; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from bench._common import drop_namespace, fmt, machine, new_namespace, quiet_logs, servers, table
from tidydesk.common import db
from tidydesk.common.store import JetStreamEventStore, KvIndex, RawStore, connect
from tidydesk.common.topology import apply_topology
from tidydesk.desk.hours import KEY, HoursConfig, make_hours
from tidydesk.ingest.intake import Intake
from tidydesk.queue.api import build, runner
from tidydesk.queue.auth import TokenStore

MAILBOX = "support@acme.example"
TAGS = ("billing", "hardware", "shipping", "refund", "login")


Rows = list[tuple[Any, ...]]


def _rows(n: int) -> tuple[Rows, Rows, Rows]:
    now = datetime.now(UTC)
    tickets: Rows = []
    events: Rows = []
    tags: Rows = []
    seq = 0

    def event(kind: str, tid: str, at: datetime, data: str = "{}") -> None:
        nonlocal seq
        seq += 1
        events.append((seq, f"e{seq}", f"tidydesk.{kind}", tid, at, data))

    for i in range(n):
        tid = f"t{i:08d}"
        opened = now - timedelta(days=30) + timedelta(seconds=i * (30 * 86400 / n))
        replied, solved = opened + timedelta(minutes=20 + i % 300), opened + timedelta(hours=5)
        reopened = i % 10 == 0
        tickets.append((tid, i + 1, "open" if reopened else "solved", f"Topic {i}",
                        f"user{i % 200}@example.com", MAILBOX, opened, solved,
                        "ko" if i % 4 == 0 else "en", replied, None if reopened else solved,
                        int(reopened)))
        event("ticket.opened", tid, opened)
        event("message.threaded", tid, opened)
        event("reply.sent", tid, replied)
        event("ticket.solved", tid, solved)
        if reopened:
            event("ticket.reopened", tid, solved + timedelta(hours=1))
        elif i % 5 == 0:
            event("followup.acknowledged", tid, solved + timedelta(hours=1))
            event("agent.thanked", tid, solved + timedelta(hours=1),
                  msgspec.json.encode({"data": {"agent": f"agent{i % 7}"}}).decode())
        if i % 3 == 0:
            tags.append((tid, TAGS[i % len(TAGS)], None, "kim", opened))
    return tickets, events, tags


async def bench(args: argparse.Namespace) -> None:
    quiet_logs()
    ns = new_namespace()
    with servers(postgres=True) as s:
        nc = await connect(s.nats_url, "bench-stats")
        js = nc.jetstream()
        await apply_topology(js, ns)
        pool = await db.connect(s.database_url, ns, attempts=3)
        try:
            await db.migrate(pool)
            tickets, events, tags = _rows(args.tickets)
            async with pool.acquire() as conn:
                await conn.copy_records_to_table(
                    "tickets", records=tickets,
                    columns=["id", "number", "status", "subject", "requester", "mailbox",
                             "opened_at", "updated_at", "language", "first_response_at",
                             "solved_at", "reopen_count"])
                await conn.copy_records_to_table(
                    "events", records=[(*e[:5], e[5]) for e in events],
                    columns=["seq", "id", "type", "ticket_id", "time", "data"])
                await conn.copy_records_to_table("ticket_tags", records=tags)
                await conn.execute("ANALYZE")
            kv = await js.key_value(f"{ns}_config")
            await kv.put(KEY, msgspec.json.encode(HoursConfig(mailboxes={
                MAILBOX: make_hours("Asia/Seoul", "mon-fri 09:00-18:00")})))
            store, index = JetStreamEventStore(js, ns), KvIndex(js, ns)
            tokens = TokenStore(js, ns)
            app = build(pool, store, RawStore(js, ns), Intake(store, RawStore(js, ns)), 1 << 20,
                        b"bench", index, tokens=tokens)
            server = runner(app)
            await server.setup()
            site = web.TCPSite(server, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            secret, _ = await tokens.create(("read",), name="bench")
            rows = []
            async with aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {secret}"}) as http:
                for path in ("/stats", f"/stats?mailbox={MAILBOX}", "/customers/user7@example.com",
                             "/tickets?tag=billing&status=all&limit=100"):
                    times = []
                    for _ in range(args.rounds):
                        start = time.perf_counter()
                        async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                            body = await r.read()
                            assert r.status == 200, (path, body[:200])
                        times.append((time.perf_counter() - start) * 1000)
                    rows.append((f"`GET {path}`", fmt(statistics.median(times), 1),
                                 fmt(max(times), 1), fmt(len(body) / 1024, 1)))
            await server.cleanup()
        finally:
            await pool.execute(f'DROP SCHEMA "{ns}" CASCADE')
            await pool.close()
            await drop_namespace(js, ns)
            await nc.close()
        print(f"{args.tickets:,} tickets, {len(events):,} events, {len(tags):,} tags; "
              f"{machine()}; {'; '.join(s.notes)}\n")
        print(table(("request", "median ms", "max ms", "KiB"), rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5, help="requests per row")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
