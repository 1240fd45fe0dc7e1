"""SMTP listener (aiosmtpd) in front of Intake."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.common.events import MessageRejected
from services.ingest.intake import Intake

log = structlog.get_logger()
STORE_TIMEOUT = 15.0  # seconds to get a mail into JetStream before answering 451


class IntakeHandler:
    """aiosmtpd handler: 250 only once the mail is stored and published."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        rcpt = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        try:
            event, new = await asyncio.wait_for(
                self.intake.accept(raw, mailbox=rcpt, envelope_from=envelope.mail_from or ""),
                STORE_TIMEOUT,
            )
        except Exception as exc:  # NATS down or slow: let the sending server retry
            log.error("smtp_store_failed", error=str(exc) or type(exc).__name__)
            return "451 4.3.0 Mail not stored, please try again later"
        if isinstance(event, MessageRejected):
            return f"554 5.6.0 Rejected: {event.reason} (kept as {event.digest[:16]})"
        return f"250 2.0.0 Ok: {'queued' if new else 'already had'} {event.digest[:16]}"


async def serve(intake: Intake, host: str, port: int, max_bytes: int) -> asyncio.Server:
    """Start listening; the server runs on the caller's event loop."""
    loop = asyncio.get_running_loop()
    factory: Any = partial(
        SMTP, IntakeHandler(intake), data_size_limit=max_bytes, enable_SMTPUTF8=True,
        decode_data=False, ident="tidydesk ESMTP", hostname=host,
    )
    return await loop.create_server(factory, host=host, port=port)
