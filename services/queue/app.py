"""The queue service: PostgreSQL projections and the HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from tidydesk.common import db, health, parking
from tidydesk.common.runtime import open_bus
from tidydesk.common.settings import Settings
from tidydesk.common.store import JetStreamEventStore, KvIndex, RawStore, close
from tidydesk.ingest.intake import Intake
from tidydesk.queue.api import allowed_hosts, build, runner
from tidydesk.queue.inbound import Providers
from tidydesk.queue.projection import Projector
from tidydesk.tickets.tokens import shared_secret

log = structlog.get_logger()


async def forever(what: str, run: Callable[[], Awaitable[object]]) -> None:
    """Keep `run` going; a failure (PostgreSQL restart, …) restarts it (from the checkpoint)."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(f"{what}_failed_restarting")
            await asyncio.sleep(1)


def progressing(projector: Projector, stalled_after: float = 60.0) -> health.Check:
    """Ready unless the projector is behind the stream and its checkpoint has not moved for
    `stalled_after` seconds (a stuck projector must not look healthy)."""
    seen = {"checkpoint": -1, "since": time.monotonic()}

    async def check() -> str | None:
        done = await projector.checkpoint()
        end = (await projector.js.stream_info(projector.stream)).state.last_seq
        now = time.monotonic()
        if done != seen["checkpoint"] or done >= end:
            seen["checkpoint"], seen["since"] = done, now
            return None
        if now - seen["since"] > stalled_after:
            return (f"projection stalled at sequence {done} of {end} for "
                    f"{now - seen['since']:.0f}s")
        return None

    return check


async def run(settings: Settings) -> None:
    ns = settings.namespace
    pool = await db.connect(settings.database_url, ns)
    await db.migrate(pool)
    nc, js = await open_bus(settings, "tidydesk-queue")
    store, raw = JetStreamEventStore(js, ns), RawStore(js, ns)
    index = KvIndex(js, ns)
    secret = await shared_secret(index)
    intake = Intake(store, raw, trusted_authserv=settings.trusted_authserv)
    app = build(pool, store, raw, intake, settings.max_message_bytes, secret, index,
                hosts=allowed_hosts(settings), providers=Providers.from_settings(settings))
    server = runner(app)
    await server.setup()
    await web.TCPSite(server, settings.http_host, settings.http_port).start()
    log.info("http_listening", host=settings.http_host, port=settings.http_port)
    try:
        projector = Projector(js, pool, ns)
        health.register("projection", progressing(projector))
        await asyncio.gather(
            forever("projection", projector.run),
            forever("parked_retries", lambda: parking.serve_retries(
                js, ns, projector.name, projector.retry)),
        )
    finally:
        await server.cleanup()
        await close(nc)  # unacked work is redelivered to the next instance
        await pool.close()

