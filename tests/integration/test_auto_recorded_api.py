"""Issue 10 part 6: an auto-reply that threads nowhere is recorded, opens no ticket, and the API
lists it as such (GET /messages?auto=recorded): mail in over real SMTP, NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

import aiohttp

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.ingest.smtp import serve as serve_smtp
from tidydesk.queue.auth import TokenStore

OOO = ("Thank you for your email. I am out of the office until 14 April with limited access "
       "to email. For urgent matters please contact helpdesk@acme.example.")


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("someone@example.com", ["support@acme.example"], raw)


async def test_out_of_office_without_thread_headers_is_listed_and_opens_no_ticket(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    port = free_port()
    server = await serve_smtp(stack.intake, "127.0.0.1", port, 1 << 20)
    try:
        # no In-Reply-To, no References: threads nowhere
        for i, sender in enumerate(("kim@example.com", "lee@example.com")):
            await asyncio.to_thread(send, port, mail(
                f"ooo{i}@example.com", OOO, sender=sender, subject="Automatic reply: hello",
                extra="Auto-Submitted: auto-replied\r\n" if i else ""))
        await asyncio.to_thread(send, port, mail("real@example.com", "The heater is broken."))
    finally:
        server.close()

    async def listed() -> list[dict[str, Any]]:
        async with (aiohttp.ClientSession(headers=api_headers) as http,
                    http.get(f"{api}/messages?auto=recorded") as r):
            assert r.status == 200
            found: list[dict[str, Any]] = (await r.json())["messages"]
        return found if len(found) == 2 and await stack.tickets() else []

    rows = await eventually(listed)
    assert {r["message_id"] for r in rows} == {"ooo0@example.com", "ooo1@example.com"}
    assert {r["sender"] for r in rows} == {"kim@example.com", "lee@example.com"}
    assert {r["subject"] for r in rows} == {"Automatic reply: hello"}
    assert all(r["auto"] and r["received_at"] and r["mailbox"] == "support@acme.example"
               for r in rows)
    (ticket,) = await stack.tickets()  # the real mail only: the auto-replies opened none
    assert ticket["requester"] == "alice@example.com" and ticket["message_count"] == 1
    opened = await stack.pool.fetchval(
        "SELECT count(*) FROM messages WHERE message_id LIKE 'ooo%' AND ticket_id IS NOT NULL")
    assert opened == 0

    async with aiohttp.ClientSession(headers=api_headers) as http:
        async with http.get(f"{api}/messages?auto=recorded&limit=1") as r:  # keyset pages
            first = await r.json()
            assert len(first["messages"]) == 1 and r.headers["Link"]
        async with http.get(f"{api}{first['next']}") as r:
            second = await r.json()
        assert [*first["messages"], *second["messages"]] == rows and second["next"] is None
        for query in ("", "?auto=yes", "?auto=recorded&cursor=%21", "?auto=recorded&limit=0"):
            async with http.get(f"{api}/messages{query}") as r:
                assert r.status == 400, query
        async with http.get(f"{api}/openapi.json") as r:
            assert "/messages" in (await r.json())["paths"]

    tokens = TokenStore(stack.js, stack.ns)
    for tenant, want in (("acme.example", 2), ("other.example", 0)):
        token, _ = await tokens.create(("read",), tenant=tenant)
        async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
                    http.get(f"{api}/messages?auto=recorded") as r):
            assert r.status == 200 and len((await r.json())["messages"]) == want, tenant
    intake, _ = await tokens.create(("intake",))
    async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {intake}"}) as http,
                http.get(f"{api}/messages?auto=recorded") as r):
        assert r.status == 403
