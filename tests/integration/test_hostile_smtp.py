"""Hostile bytes through the real SMTP listener into real NATS and PostgreSQL: every mail the
listener takes (250, or 554 with the rejection kept) ends as a projected row, and none stops
the projector (a NUL once made it fail forever on `messages`)."""

from __future__ import annotations

import asyncio
import smtplib
import uuid

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import Stack, eventually, free_port, mail
from tests.unit.test_sanitize import hostile_mail
from tidydesk.ingest.smtp import serve


def _send(port: int, raw: bytes) -> tuple[int, str]:
    """(code, text) of the final reply to DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.com")
        code, text = smtp.rcpt("support@acme.example")
        assert code == 250, text
        code, text = smtp.data(raw)
        return code, text.decode("utf-8", "replace")


async def _row(stack: Stack, code: int, reply: str) -> dict[str, object] | None:
    """The projected row of the mail a 250/554 reply names (by its digest prefix)."""
    digest = reply.rstrip(")").split()[-1]
    table = "messages" if code == 250 else "rejected"
    row = await stack.pool.fetchrow(f"SELECT * FROM {table} WHERE digest LIKE $1 || '%'",
                                    digest)
    return dict(row) if row else None


async def _listener(stack: Stack) -> tuple[asyncio.Server, int]:
    port = free_port()
    return await serve(stack.intake, "127.0.0.1", port, 1 << 20), port


async def test_nul_and_decoded_nul_reach_postgres_cleaned(stack: Stack) -> None:
    server, port = await _listener(stack)
    try:
        cases = [
            (mail("nul@x", "hi\x00there"), "hithere", "Printer broken"),
            (mail("subj@x", subject="=?utf-16be?B?AAA=?="), "Hello", ""),
            (mail("esc@x", "a\\x00b").replace(b"charset=utf-8", b"charset=unicode_escape"),
             "a\\x00b", "Printer broken"),
        ]
        for raw, body, subject in cases:
            code, reply = await asyncio.to_thread(_send, port, raw)
            assert code == 250 and "queued" in reply, reply
            row = await eventually(lambda c=code, r=reply: _row(stack, c, r))
            assert str(row["body"]).strip() == body and row["subject"] == subject
    finally:
        server.close()


HOSTILE = st.one_of(
    st.binary(max_size=2000),
    hostile_mail().map(lambda raw: f"Message-ID: <{uuid.uuid4()}@fuzz>\r\n".encode() + raw),
)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(HOSTILE)
async def test_hostile_mail_is_projected_or_refused(stack: Stack, raw: bytes) -> None:
    server, port = await _listener(stack)
    try:
        code, reply = await asyncio.to_thread(_send, port, raw)
    finally:
        server.close()
    event(f"SMTP {code}{' duplicate' if 'already had' in reply else ''}")
    if code not in (250, 554) or "already had" in reply:
        return  # refused by the listener (a line over 1000 bytes), or a duplicate
    assert await eventually(lambda: _row(stack, code, reply)), (code, reply)
