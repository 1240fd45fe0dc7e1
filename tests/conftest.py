"""Real servers for the tests: the ones in TIDYDESK_NATS_URL / TIDYDESK_DATABASE_URL when
set, else an embedded nats-server -js and PostgreSQL started here on free ports/sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from nats.aio.client import Client

from tidydesk.common import db
from tidydesk.common.embedded import EmbeddedNats, EmbeddedPostgres
from tidydesk.common.store import connect
from tidydesk.common.topology import apply_topology, topology_streams

T = TypeVar("T")
# several copies of a service run at once in the tests: each takes a free health port
os.environ.setdefault("TIDYDESK_HEALTH_PORT", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def servers_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def nats_url(servers_home: Path) -> Iterator[str]:
    if os.environ.get("TIDYDESK_NATS_URL"):
        yield os.environ["TIDYDESK_NATS_URL"]
        return
    server = EmbeddedNats(servers_home)
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def database_url(servers_home: Path) -> Iterator[str]:
    if os.environ.get("TIDYDESK_DATABASE_URL"):
        yield os.environ["TIDYDESK_DATABASE_URL"]
        return
    server = EmbeddedPostgres(servers_home)
    yield server.start()
    server.stop()


@pytest.fixture
def ns() -> str:
    """A namespace of its own per test: streams, buckets and SQL schema don't collide."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
async def nc(nats_url: str, ns: str) -> AsyncIterator[Client]:
    client = await connect(nats_url, "tidydesk-tests")
    js = client.jetstream()
    await apply_topology(js, ns)
    yield client
    for stream in topology_streams(ns):
        await js.delete_stream(stream)
    await client.close()


@pytest.fixture
async def pool(database_url: str, ns: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.connect(database_url, ns, attempts=3)
    await db.migrate(p)
    yield p
    await p.execute(f'DROP SCHEMA "{ns}" CASCADE')
    try:
        await asyncio.wait_for(p.close(), 15)
    except TimeoutError:
        p.terminate()


class Stack:
    """The services' cores running in the test's event loop against real servers."""

    def __init__(self, nc: Client, pool: asyncpg.Pool, ns: str, policy: str) -> None:
        from tidydesk.common.settings import Settings
        from tidydesk.common.store import JetStreamEventStore, RawStore
        from tidydesk.ingest.intake import Intake

        self.js, self.pool, self.ns = nc.jetstream(), pool, ns
        self.settings = Settings.from_env({"TIDYDESK_NAMESPACE": ns, "TIDYDESK_POLICY": policy})
        self.store = JetStreamEventStore(self.js, ns)
        self.intake = Intake(self.store, RawStore(self.js, ns))

    async def tasks(self) -> list[asyncio.Task[Any]]:
        from tidydesk.common.runtime import consume
        from tidydesk.policy.app import PolicyService
        from tidydesk.queue.app import forever
        from tidydesk.queue.projection import Projector
        from tidydesk.threading.app import build, lanes, options

        threading = await build(self.settings, self.js)
        width = self.settings.consumer_concurrency
        return [
            asyncio.create_task(consume(self.js, self.ns, "threading", threading.handle,
                                        concurrency=width, lane=lanes(options(self.settings)))),
            asyncio.create_task(consume(self.js, self.ns, "policy",
                                        PolicyService(self.js, self.settings).handle,
                                        concurrency=width)),
            asyncio.create_task(forever("projection", Projector(self.js, self.pool, self.ns).run)),
        ]

    async def tickets(self) -> list[dict[str, object]]:
        rows = await self.pool.fetch("SELECT * FROM tickets ORDER BY number")
        return [dict(r) for r in rows]


async def eventually(check: Callable[[], Awaitable[T]], within: float = 15.0) -> T:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            assert result, "condition not reached in time"
            return result
        await asyncio.sleep(0.05)


@pytest.fixture
async def stack(nc: Client, pool: asyncpg.Pool, ns: str) -> AsyncIterator[Stack]:
    s = Stack(nc, pool, ns, policy="always-reopen")
    tasks = await s.tasks()
    yield s
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=15)  # bounded: a stuck task must not hang the suite


def mail(message_id: str, body: str = "Hello", *, sender: str = "alice@example.com",
         subject: str = "Printer broken", in_reply_to: str | None = None,
         references: tuple[str, ...] = (), extra: str = "") -> bytes:
    """A small RFC 5322 message."""
    head = (f"From: Alice <{sender}>\r\nTo: support@acme.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n")
    if in_reply_to:
        refs = " ".join(f"<{r}>" for r in (references or (in_reply_to,)))
        head += f"In-Reply-To: <{in_reply_to}>\r\nReferences: {refs}\r\n"
    return (head + extra + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
            ).encode()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[str]:
    """The HTTP API of the stack on a free loopback port."""
    from aiohttp import web

    from tidydesk.common.store import KvIndex
    from tidydesk.queue.api import build
    from tidydesk.tickets.tokens import shared_secret

    index = KvIndex(stack.js, stack.ns)
    app = build(stack.pool, stack.store, stack.intake.raw, stack.intake, 1 << 20,
                await shared_secret(index), index)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def api_headers(stack: Stack) -> dict[str, str]:
    """An admin token for requests to the `api` fixture."""
    from tidydesk.queue.auth import TokenStore

    token, _ = await TokenStore(stack.js, stack.ns).create(("admin",), name="tests")
    return {"Authorization": f"Bearer {token}"}
