"""Issue 9: what a mail is (tenant + content) decides its dedupe, never the Message-ID alone.

Real SMTP listener, NATS and PostgreSQL (the conftest fixtures): a 250 means recorded.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.events import Event, MessageReceived, MessageRejected
from tidydesk.common.store import JetStreamEventStore
from tidydesk.ingest.intake import Intake
from tidydesk.ingest.smtp import serve
from tidydesk.queue.app import forever
from tidydesk.queue.projection import Projector

RELAYED = (b"Received: from mx2.example by mx3.example; Mon, 23 Nov 2026 10:05:00 +0000\r\n"
           b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; b=AAAA\r\n"
           b"Authentication-Results: mx3.example; dkim=pass\r\n")


def _transact(port: int, rcpts: Sequence[str], raw: bytes) -> tuple[int, str]:
    """One SMTP transaction; the reply to DATA (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.com")
        for rcpt in rcpts:
            assert smtp.rcpt(rcpt)[0] == 250
        code, text = smtp.data(raw)
        return code, text.decode()


@pytest.fixture
async def stack(nc: Client, pool: asyncpg.Pool, ns: str) -> AsyncIterator[Stack]:
    """Intake and the projection only: these tests are about what gets recorded."""
    s = Stack(nc, pool, ns, policy="always-reopen")
    task = asyncio.create_task(forever("projection", Projector(s.js, s.pool, ns).run))
    yield s
    task.cancel()
    await asyncio.wait([task], timeout=15)


@pytest.fixture
async def smtp_port(stack: Stack) -> AsyncIterator[int]:
    port = free_port()
    server = await serve(stack.intake, "127.0.0.1", port, 1 << 20)
    yield port
    server.close()


async def send(port: int, rcpts: Sequence[str], raw: bytes) -> tuple[int, str]:
    return await asyncio.to_thread(_transact, port, rcpts, raw)


async def rows(stack: Stack, n: int) -> list[dict[str, Any]]:
    """The projected messages, once there are at least `n`."""
    async def check() -> list[dict[str, Any]]:
        found = await stack.pool.fetch(
            "SELECT tenant, message_id, claimed_message_id, mailbox, body FROM messages"
            " ORDER BY tenant, body")
        return [dict(r) for r in found] if len(found) >= n else []
    return await eventually(check)


async def test_a_reused_message_id_neither_drops_nor_replaces_the_real_mail(
        stack: Stack, smtp_port: int) -> None:
    stranger = mail("x@customer.example", "I was here first", sender="eve@evil.example")
    real = mail("x@customer.example", "My printer is broken")
    assert (await send(smtp_port, ["support@acme.example"], stranger))[0] == 250
    code, text = await send(smtp_port, ["support@acme.example"], real)
    assert code == 250 and "queued" in text, text
    # a redelivery through another relay (new trace headers) is the same mail: refused
    code, text = await send(smtp_port, ["support@acme.example"], RELAYED + real)
    assert code == 250 and "already had" in text, text
    code, text = await send(smtp_port, ["support@acme.example"], RELAYED + stranger)
    assert "already had" in text, text
    first, second = await rows(stack, 2)
    assert first["body"].startswith("I was here first") and first["message_id"] == (
        "x@customer.example") and first["claimed_message_id"] is None
    assert second["body"].startswith("My printer") and second["message_id"].endswith(
        "@tidydesk.invalid") and second["claimed_message_id"] == "x@customer.example"
    event, new = await stack.intake.accept(real, mailbox="support@acme.example")
    assert not new and isinstance(event, MessageReceived)
    assert "Message-ID reused by different content" in event.notes
    assert len(await rows(stack, 2)) == 2


async def test_one_mail_reaches_every_tenant_it_was_sent_to(stack: Stack, smtp_port: int
                                                            ) -> None:
    # one transaction, two tenants (and a second mailbox of one of them: recorded once)
    raw = mail("both@example.com", "Hello both")
    code, _ = await send(smtp_port, ["support@acme.example", "Help@Beta.example",
                                     "sales@acme.example"], raw)
    assert code == 250
    # the same mail to a third tenant in a later transaction is recorded there too
    assert (await send(smtp_port, ["desk@gamma.example"], raw))[0] == 250
    found = await rows(stack, 3)
    assert [(r["tenant"], r["mailbox"], r["message_id"]) for r in found] == [
        ("acme.example", "support@acme.example", "both@example.com"),
        ("beta.example", "help@beta.example", "both@example.com"),
        ("gamma.example", "desk@gamma.example", "both@example.com")]
    assert "already had" in (await send(smtp_port, ["help@beta.example"], raw))[1]


class FlakyStore(JetStreamEventStore):
    """Fails the first publish for one mailbox's tenant, as a NATS hiccup would."""

    def __init__(self, inner: JetStreamEventStore, victim: str) -> None:
        super().__init__(inner.js, inner.ns)
        self.victim, self.failed = victim, False

    async def record_intake(self, event: Event, key: str) -> bool:
        mailbox = event.mailbox if isinstance(event, MessageReceived) else ""
        if mailbox.endswith(self.victim) and not self.failed:
            self.failed = True
            raise ConnectionError("nats hiccup")
        return await super().record_intake(event, key)


async def test_a_failed_publish_for_any_recipient_is_451_and_the_retry_is_exact(
        stack: Stack) -> None:
    port = free_port()
    intake = Intake(FlakyStore(stack.store, "@beta.example"), stack.intake.raw)
    server = await serve(intake, "127.0.0.1", port, 1 << 20)
    try:
        raw = mail("flaky@example.com", "Hello")
        rcpts = ["support@acme.example", "help@beta.example"]
        assert (await send(port, rcpts, raw))[0] == 451
        code, text = await send(port, rcpts, raw)
        assert code == 250 and "queued" in text
        assert "already had" in (await send(port, rcpts, raw))[1]
    finally:
        server.close()
    found = await rows(stack, 2)
    await asyncio.sleep(0.5)  # nothing more arrives
    assert [r["tenant"] for r in await rows(stack, 2)] == ["acme.example", "beta.example"]
    assert len(found) == 2


@pytest.mark.parametrize("value", ["<>", "<<x@y.example>>", "<a b@y.example>", "no-brackets"])
async def test_malformed_message_ids_are_synthesised_not_quarantined(
        stack: Stack, smtp_port: int, value: str) -> None:
    raw = mail("placeholder", f"Body for {value}").replace(b"<placeholder>", value.encode())
    code, text = await send(smtp_port, ["support@acme.example"], raw)
    assert code == 250 and "queued" in text, text
    assert "already had" in (await send(smtp_port, ["support@acme.example"], RELAYED + raw))[1]
    (row,) = await rows(stack, 1)
    assert row["message_id"].endswith("@tidydesk.invalid")


async def test_lines_over_1000_octets_are_accepted_and_kept_as_sent(
        stack: Stack, smtp_port: int) -> None:
    raw = mail("long@example.com", "x" * 5000 + "\r\n" + "y" * 70)
    code, text = await send(smtp_port, ["support@acme.example"], raw)
    assert code == 250, text
    (row,) = await rows(stack, 1)
    digest = await stack.pool.fetchval("SELECT digest FROM messages")
    assert await stack.intake.raw.get(digest) == raw and "x" * 5000 in row["body"]


async def test_the_tenant_is_the_envelope_recipient_and_none_is_a_rejection(
        stack: Stack, smtp_port: int) -> None:
    # To names acme, the envelope says beta: beta's mail
    assert (await send(smtp_port, ["help@beta.example"], mail("env@example.com")))[0] == 250
    (row,) = await rows(stack, 1)
    assert (row["tenant"], row["mailbox"]) == ("beta.example", "help@beta.example")
    blind = mail("blind@example.com").replace(b"To: support@acme.example",
                                              b"To: undisclosed-recipients:;")
    event, new = await stack.intake.accept(blind)
    assert new and isinstance(event, MessageRejected) and event.reason == "no recipient mailbox"
    reason = await eventually(lambda: stack.pool.fetchval("SELECT reason FROM rejected"))
    assert reason == "no recipient mailbox"
