"""The intake service: an SMTP listener in front of Intake."""

from __future__ import annotations

import asyncio

import structlog

from services.common.runtime import open_bus
from services.common.settings import Settings
from services.common.store import JetStreamEventStore, RawStore, close
from services.ingest.intake import Intake
from services.ingest.smtp import serve

log = structlog.get_logger()


async def run(settings: Settings) -> None:
    nc, js = await open_bus(settings, "tidydesk-ingest")
    ns = settings.namespace
    intake = Intake(JetStreamEventStore(js, ns), RawStore(js, ns))
    server = await serve(intake, settings.smtp_host, settings.smtp_port,
                         settings.max_message_bytes)
    log.info("smtp_listening", host=settings.smtp_host, port=settings.smtp_port)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await close(nc)  # unacked work is redelivered to the next instance

