"""The intake service: an SMTP listener in front of Intake."""

from __future__ import annotations

import asyncio

import structlog

from tidydesk.common import health
from tidydesk.common.runtime import open_bus
from tidydesk.common.settings import Settings
from tidydesk.common.store import JetStreamEventStore, RawStore, close
from tidydesk.ingest.imap import poll_forever
from tidydesk.ingest.intake import Intake
from tidydesk.ingest.smtp import serve

log = structlog.get_logger()


async def run(settings: Settings) -> None:
    nc, js = await open_bus(settings, "tidydesk-ingest")
    ns = settings.namespace
    intake = Intake(JetStreamEventStore(js, ns), RawStore(js, ns),
                    trusted_authserv=settings.trusted_authserv)
    server = await serve(
        intake, settings.smtp_host, settings.smtp_port, settings.max_message_bytes,
        domains=settings.smtp_domains, tls_cert=settings.smtp_tls_cert,
        tls_key=settings.smtp_tls_key, auth=settings.smtp_auth,
        auth_insecure=settings.smtp_auth_insecure, reuse_port=settings.shares_listener("ingest"),
    )
    if settings.shares_listener("ingest"):
        health.register("smtp", health.serving(server))
    log.info("smtp_listening", host=settings.smtp_host, port=settings.smtp_port)
    try:
        if settings.imap_urls:
            await poll_forever(intake, js, ns, settings.imap_urls,
                               poll_seconds=settings.imap_poll_seconds)
        else:
            await asyncio.Event().wait()
    finally:
        server.close()
        await close(nc)  # unacked work is redelivered to the next instance

