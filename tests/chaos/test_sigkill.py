"""SIGKILL the threading and queue processes while mail flows: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
from nats.aio.client import Client

from tests.conftest import eventually, free_port, mail
from tidydesk.common.store import JetStreamEventStore, RawStore
from tidydesk.ingest.intake import Intake

MAILS = 120


async def start(name: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", f"tidydesk.{name}",
                                                env=env, stderr=asyncio.subprocess.DEVNULL)


async def test_killed_services_lose_and_duplicate_nothing(nc: Client, pool: asyncpg.Pool,
                                                          nats_url: str, database_url: str,
                                                          ns: str) -> None:
    js = nc.jetstream()
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_DATABASE_URL": database_url,
           "TIDYDESK_NAMESPACE": ns, "TIDYDESK_HTTP_PORT": str(free_port())}
    procs = {name: await start(name, env) for name in ("threading", "queue")}
    intake = Intake(JetStreamEventStore(js, ns), RawStore(js, ns))
    try:
        for i in range(MAILS):
            parent = f"k{i - 1}@example.com" if i % 2 else None
            await intake.accept(mail(f"k{i}@example.com", f"Message {i}", in_reply_to=parent,
                                     sender=f"user{i // 2}@example.com",
                                     subject=f"Case {i // 2}"))
            if i in (30, 70):  # kill both mid-flow, restart them
                for name, proc in procs.items():
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
                    procs[name] = await start(name, env)

        async def settled() -> bool:
            try:
                count = await pool.fetchval("SELECT count(*) FROM messages "
                                            "WHERE ticket_id IS NOT NULL")
            except asyncpg.UndefinedTableError:
                return False
            return int(count) == MAILS

        await eventually(settled, within=90)
        tickets = await pool.fetch("SELECT id, message_count FROM tickets")
        assert len(tickets) == MAILS // 2
        assert all(t["message_count"] == 2 for t in tickets)  # each message threaded once
        events = await pool.fetchval("SELECT count(*) FROM events WHERE type = "
                                     "'tidydesk.message.threaded'")
        assert events == MAILS
        store = JetStreamEventStore(js, ns)
        for t in tickets:
            assert len((await store.load(t["id"])).messages) == 2
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
