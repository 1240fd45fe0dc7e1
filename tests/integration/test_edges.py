"""The HTTP API and the SMTP listener on real sockets, including bad input."""

from __future__ import annotations

import asyncio
import io
import smtplib
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.embedded import EmbeddedNats
from tidydesk.common.store import JetStreamEventStore, RawStore, close, connect
from tidydesk.common.topology import apply_topology
from tidydesk.ingest.intake import Intake
from tidydesk.ingest.smtp import serve
from tidydesk.queue.auth import TokenStore


async def _session(stack: Stack) -> aiohttp.ClientSession:
    """A client sending an admin token (every API route but health and docs needs one)."""
    token, _ = await TokenStore(stack.js, stack.ns).create(("admin",), name="edges")
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})


async def test_api_serves_tickets_messages_events_and_raw(stack: Stack, api: str) -> None:
    async with await _session(stack) as http:
        async with http.post(f"{api}/inbound/mime", data=mail("h1@example.com")) as r:
            assert r.status == 202
            assert (await r.json())["message_id"] == "h1@example.com"
        (row,) = await eventually(stack.tickets)
        async with http.get(f"{api}/tickets") as r:
            (listed,) = (await r.json())["tickets"]
        assert {"id", "number", "status", "subject", "requester"} <= listed.keys()
        async with http.get(f"{api}/tickets/{listed['number']}") as r:
            detail = await r.json()
        assert detail["id"] == row["id"]
        assert detail["reply_to"].startswith(f"support+t{row['id']}.")
        assert [m["message_id"] for m in detail["messages"]] == ["h1@example.com"]
        async with http.post(f"{api}/tickets/{row['id']}/solve", json={"agent": "kim"}) as r:
            assert r.status == 202
        async with http.get(f"{api}/tickets/{row['id']}/events") as r:
            types = [e["type"] for e in (await eventually(
                lambda: _events(http, f"{api}/tickets/{row['id']}/events", 3)))]
        assert types == ["tidydesk.ticket.opened", "tidydesk.message.threaded",
                         "tidydesk.ticket.solved"]
        async with http.get(f"{api}/messages/h1@example.com/raw") as r:
            assert await r.read() == mail("h1@example.com")


async def _events(http: aiohttp.ClientSession, url: str, n: int) -> list[dict[str, str]]:
    async with http.get(url) as r:
        events: list[dict[str, str]] = (await r.json())["events"]
    return events if len(events) >= n else []


async def test_api_bad_input_gets_problem_json(stack: Stack, api: str) -> None:
    async with await _session(stack) as http:
        async with http.get(f"{api}/tickets/nope") as r:
            assert r.status == 404 and "nope" in (await r.json(content_type=None))["detail"]
            assert r.content_type == "application/problem+json"
        await stack.intake.accept(mail("h2@example.com"))
        (row,) = await eventually(stack.tickets)
        async with http.post(f"{api}/tickets/{row['id']}/solve", data=b"{not json") as r:
            assert r.status == 400
            assert "malformed JSON" in (await r.json(content_type=None))["detail"]
        async with http.post(f"{api}/inbound/mime", data=b"\x00\x01 no headers") as r:
            assert r.status == 422
            assert "rejected" in (await r.json(content_type=None))["detail"]
        async with http.post(f"{api}/inbound/mime", data=io.BytesIO(b"x" * (2 << 20))) as r:
            assert r.status == 413 and "detail" in await r.json(content_type=None)
        async with http.get(f"{api}/messages/missing@x/raw") as r:
            assert r.status == 404


async def test_smtp_accepts_and_refuses_oversized(stack: Stack) -> None:
    port = free_port()
    server = await serve(stack.intake, "127.0.0.1", port, max_bytes=10_000)

    def send(raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("alice@example.com", ["support@acme.example"], raw)

    try:
        await asyncio.to_thread(send, mail("s1@example.com", "Hello over SMTP"))
        (row,) = await eventually(stack.tickets)
        assert row["mailbox"] == "support@acme.example"
        with pytest.raises(smtplib.SMTPException) as err:
            await asyncio.to_thread(send, mail("s2@example.com", "x" * 20_000))
        assert "552" in str(err.value)
    finally:
        server.close()


async def test_smtp_answers_451_when_nats_is_down(tmp_path: Path, ns: str) -> None:
    """The mail is not acknowledged, so the sending server keeps it and retries."""
    nats = EmbeddedNats(tmp_path)
    nc = await connect(nats.start(), "doomed")
    js = nc.jetstream()
    await apply_topology(js, ns)
    intake = Intake(JetStreamEventStore(js, ns), RawStore(js, ns))
    port = free_port()
    server = await serve(intake, "127.0.0.1", port, max_bytes=1 << 20)
    nats.stop()

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.sendmail("alice@example.com", ["support@acme.example"],
                          mail("down@example.com"))

    try:
        with pytest.raises(smtplib.SMTPDataError) as err:
            await asyncio.to_thread(send)
        assert err.value.smtp_code == 451
    finally:
        server.close()
        await close(nc)


async def test_postmark_inbound_json(stack: Stack, api: str) -> None:
    payload = {"FromFull": {"Email": "pm@example.com", "Name": "P M"}, "To": "support@acme.example",
               "Subject": "Via Postmark", "MessageID": "pm-1", "TextBody": "Hello from Postmark",
               "Headers": [{"Name": "Message-ID", "Value": "<pm-1@example.com>"}]}
    async with await _session(stack) as http:
        async with http.post(f"{api}/inbound/postmark", json=payload) as r:
            assert r.status == 202 and (await r.json())["message_id"] == "pm-1@example.com"
        async with http.post(f"{api}/inbound/postmark", data=b"{oops") as r:
            assert r.status == 400 and "Postmark" in (await r.json(content_type=None))["detail"]
    (row,) = await eventually(stack.tickets)
    assert row["subject"] == "Via Postmark" and row["requester"] == "pm@example.com"


async def test_merge_moves_messages_and_redirects_new_replies(stack: Stack, api: str) -> None:
    await stack.intake.accept(mail("m1@example.com", "Printer jams", subject="Printer jams",
                                   sender="a@example.com"))
    await stack.intake.accept(mail("m2@example.com", "Invoice wrong", subject="Invoice",
                                   sender="b@example.com"))
    first, second = await eventually(lambda: _two(stack))
    async with await _session(stack) as http:
        async with http.post(f"{api}/tickets/{second['id']}/merge",
                             json={"into": str(first["number"])}) as r:
            assert r.status == 202
        async with http.post(f"{api}/tickets/{first['id']}/merge",
                             json={"into": first["id"]}) as r:
            assert r.status == 400
    await stack.intake.accept(mail("m3@example.com", "more", sender="b@example.com",
                                   in_reply_to="m2@example.com"))

    async def merged() -> bool:
        rows = {r["id"]: r for r in await stack.tickets()}
        return (rows[second["id"]]["status"] == "merged"
                and rows[first["id"]]["message_count"] == 3)

    await eventually(merged)
    ids = await stack.pool.fetch("SELECT message_id FROM messages WHERE ticket_id = $1",
                                 first["id"])
    assert {r["message_id"] for r in ids} == {"m1@example.com", "m2@example.com",
                                              "m3@example.com"}


async def _two(stack: Stack) -> list[dict[str, object]]:
    rows = await stack.tickets()
    return rows if len(rows) == 2 else []
