"""The HTTP API's contract on real servers: tokens, scopes, tenants, pages, ETags, bad input."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.store import KvIndex
from tidydesk.queue.api import build, runner
from tidydesk.queue.auth import TokenStore
from tidydesk.tickets.tokens import shared_secret

PROBLEM = "application/problem+json"


@dataclass
class Api:
    url: str
    port: int
    tokens: TokenStore
    admin: str

    async def token(self, *scopes: str, tenant: str = "") -> str:
        secret, _ = await self.tokens.create(scopes, tenant)
        return secret


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def served(stack: Stack) -> AsyncIterator[Api]:
    """The API as app.py serves it: Host check on, short body and keep-alive timeouts."""
    index = KvIndex(stack.js, stack.ns)
    tokens = TokenStore(stack.js, stack.ns)
    port = free_port()
    app = build(stack.pool, stack.store, stack.intake.raw, stack.intake, 4 << 20,
                await shared_secret(index), index, tokens=tokens,
                hosts=frozenset({f"127.0.0.1:{port}", f"localhost:{port}"}), body_timeout=1.0)
    server = runner(app, keepalive_timeout=1.0)
    await server.setup()
    await web.TCPSite(server, "127.0.0.1", port).start()
    admin, _ = await tokens.create(("admin",), name="test-admin")
    yield Api(f"http://127.0.0.1:{port}", port, tokens, admin)
    await server.cleanup()


async def _problem(r: aiohttp.ClientResponse, status: int, *words: str) -> dict[str, Any]:
    body: dict[str, Any] = await r.json(content_type=None)
    assert r.status == status, body
    assert r.content_type == PROBLEM, r.content_type
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    for word in words:
        assert word in body["detail"], body
    return body


async def _tickets(stack: Stack, n: int) -> list[dict[str, object]]:
    rows = await stack.tickets()
    return rows if len(rows) >= n else []


async def test_public_routes_and_401_without_a_valid_token(served: Api) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
            async with http.get(served.url + path) as r:
                assert r.status == 200, path
        async with http.get(served.url + "/openapi.json") as r:
            spec = await r.json()
        assert spec["openapi"].startswith("3.1")
        assert spec["security"] == [{"bearer": []}]
        assert spec["paths"]["/healthz"]["get"]["security"] == []
        assert "TicketDetail" in spec["components"]["schemas"]
        async with http.get(served.url + "/docs") as r:
            page = await r.text()
        assert "<script" not in page and "/tickets/{id}/reply" in page
        async with http.get(served.url + "/tickets") as r:
            await _problem(r, 401, "Bearer")
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(served.url + "/tickets", headers=auth("tdk_guess")) as r:
            await _problem(r, 401, "unknown")
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        async with http.post(served.url + "/inbound/mime", data=mail("p@x")) as r:
            await _problem(r, 401)
        token = await served.token("read")
        async with http.get(served.url + "/tickets", headers=auth(token)) as r:
            assert r.status == 200
        (record,) = [t for t in await served.tokens.all() if t.scopes == ("read",)]
        assert token not in str(record) and len(record.hash) == 64  # only the hash is kept
        await served.tokens.revoke(record.hash[:12])
        async with http.get(served.url + "/tickets", headers=auth(token)) as r:
            await _problem(r, 401)


async def test_scopes(stack: Stack, served: Api) -> None:
    read, write, intake = [await served.token(s) for s in ("read", "write", "intake")]
    both = await served.token("read", "write")
    async with aiohttp.ClientSession() as http:
        async with http.post(served.url + "/inbound/mime", data=mail("sc1@example.com"),
                             headers=auth(read)) as r:
            await _problem(r, 403, "intake")
        async with http.post(served.url + "/inbound/mime", data=mail("sc1@example.com"),
                             headers=auth(intake)) as r:
            assert r.status == 202
        (row,) = await eventually(lambda: _tickets(stack, 1))
        url = f"{served.url}/tickets/{row['id']}"
        async with http.get(url, headers=auth(intake)) as r:
            await _problem(r, 403, "read")
        async with http.get(url, headers=auth(write)) as r:
            await _problem(r, 403, "read")
        async with http.get(url, headers=auth(read)) as r:
            assert r.status == 200 and (await r.json())["reply_to"] is None
        async with http.get(url, headers=auth(both)) as r:
            assert (await r.json())["reply_to"].startswith(f"support+t{row['id']}.")
        async with http.post(url + "/solve", json={}, headers=auth(read)) as r:
            await _problem(r, 403, "write")
            assert 'insufficient_scope' in r.headers["WWW-Authenticate"]
        async with http.post(url + "/solve", json={}, headers=auth(write)) as r:
            assert r.status == 202


async def test_a_tenant_sees_only_its_own_tickets_and_mail(stack: Stack, served: Api) -> None:
    await stack.intake.accept(mail("a1@example.com", subject="acme one"),
                              mailbox="support@acme.example")
    await stack.intake.accept(mail("b1@example.com", subject="beta one", sender="b@example.com"),
                              mailbox="help@beta.example")
    rows = await eventually(lambda: _tickets(stack, 2))
    (acme,) = [r for r in rows if r["mailbox"] == "support@acme.example"]
    (beta,) = [r for r in rows if r["mailbox"] == "help@beta.example"]
    token = await served.token("read", "write", "intake", tenant="ACME.example")
    h = auth(token)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.url}/tickets?status=all", headers=h) as r:
            assert [t["id"] for t in (await r.json())["tickets"]] == [acme["id"]]
        for key in (beta["id"], str(beta["number"])):
            async with http.get(f"{served.url}/tickets/{key}", headers=h) as r:
                body = await _problem(r, 404)
            async with http.get(f"{served.url}/tickets/nonexistent", headers=h) as r:
                assert (await _problem(r, 404))["title"] == body["title"]  # same answer
            async with http.get(f"{served.url}/tickets/{key}/events", headers=h) as r:
                await _problem(r, 404)
            async with http.post(f"{served.url}/tickets/{key}/solve", json={}, headers=h) as r:
                await _problem(r, 404)
        async with http.post(f"{served.url}/tickets/{acme['id']}/merge", headers=h,
                             json={"into": beta["id"]}) as r:
            await _problem(r, 404)
        async with http.get(f"{served.url}/messages/b1@example.com/raw", headers=h) as r:
            await _problem(r, 404)
        async with http.get(f"{served.url}/messages/a1@example.com/raw", headers=h) as r:
            assert r.status == 200 and await r.read() == mail("a1@example.com",
                                                               subject="acme one")
        async with http.post(f"{served.url}/inbound/mime?mailbox=help@beta.example",
                             data=mail("a2@example.com"), headers=h) as r:
            await _problem(r, 403, "acme.example")
        async with http.post(f"{served.url}/inbound/mime?mailbox=desk@acme.example",
                             data=mail("a2@example.com"), headers=h) as r:
            assert r.status == 202
        async with http.get(f"{served.url}/tickets/{beta['id']}",
                            headers=auth(served.admin)) as r:
            assert r.status == 200
    assert (await stack.store.load(str(beta["id"]))).status == "open"


async def test_pages_meet_every_ticket_once_while_tickets_change(stack: Stack,
                                                                served: Api) -> None:
    for i in range(14):
        await stack.intake.accept(mail(f"pg{i}@example.com", subject=f"page {i}",
                                       sender=f"c{i % 3}@example.com"))
    rows = await eventually(lambda: _tickets(stack, 14), within=30)
    h = auth(served.admin)
    seen: list[int] = []
    async with aiohttp.ClientSession() as http:
        url: str | None = f"{served.url}/tickets?status=all&limit=3"
        while url:
            async with http.get(url, headers=h) as r:
                page, link = await r.json(), r.headers.get("Link")
                assert r.status == 200, page
            seen += [t["number"] for t in page["tickets"]]
            for t in [*page["tickets"][:1], rows[-1 - len(seen) % 5]]:  # update as we walk
                async with http.post(f"{served.url}/tickets/{t['id']}/solve", json={},
                                     headers=h) as r:
                    assert r.status == 202
            if page["next"]:
                assert link == f'<{page["next"]}>; rel="next"'
            url = served.url + page["next"] if page["next"] else None
        assert sorted(seen) == seen and sorted(seen) == sorted(int(str(r["number"]))
                                                              for r in rows)
        async with http.get(f"{served.url}/tickets?status=all&requester=C1@example.com"
                            "&mailbox=support@acme.example&limit=1000", headers=h) as r:
            assert {t["requester"] for t in (await r.json())["tickets"]} == {"c1@example.com"}
        async with http.get(f"{served.url}/tickets?status=all&updated_since=2999-01-01T00:00:00Z",
                            headers=h) as r:
            assert (await r.json())["tickets"] == []
        async with http.get(f"{served.url}/tickets?status=open,solved&updated_since="
                            "2000-01-01T00:00:00%2B00:00&limit=1000", headers=h) as r:
            assert len((await r.json())["tickets"]) == 14


async def test_if_match_and_idempotency_key(stack: Stack, served: Api) -> None:
    await stack.intake.accept(mail("im1@example.com"))
    (row,) = await eventually(lambda: _tickets(stack, 1))
    url, h = f"{served.url}/tickets/{row['id']}", auth(served.admin)
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=h) as r:
            etag, detail = r.headers["ETag"], await r.json()
        assert etag == f'"{detail["version"]}"'
        assert detail["version"] == (await stack.store.load(str(row["id"]))).version
        body = {"text": "We are on it."}
        stale = {**h, "If-Match": f'"{detail["version"] - 1}"'}
        async with http.post(url + "/reply", json=body, headers=stale) as r:
            await _problem(r, 412, "version")
            assert r.headers["ETag"] == etag
        async with http.post(url + "/solve", json={}, headers={**h, "If-Match": "nope"}) as r:
            await _problem(r, 400, "If-Match")
        keyed = {**h, "If-Match": etag, "Idempotency-Key": "k-1"}
        async with http.post(url + "/reply", json=body, headers=keyed) as r:
            assert r.status == 202
            first, new_etag = await r.json(), r.headers["ETag"]
        assert new_etag != etag
        async with http.post(url + "/reply", json=body, headers=keyed) as r:  # a retry
            assert r.status == 202 and (await r.json()) == first
        async with http.post(url + "/reply", json={**body, "idempotency_key": "k-1"},
                             headers=h) as r:
            assert (await r.json()) == first  # the body key means the same
        async with http.post(url + "/reply", json={**body, "idempotency_key": "k-2"},
                             headers=keyed) as r:
            await _problem(r, 400, "differ")
        ticket = await stack.store.load(str(row["id"]))
        assert [m.message_id for m in ticket.messages].count(first["message_id"]) == 1
        async with http.post(url + "/solve", json={}, headers={**h, "If-Match": etag}) as r:
            await _problem(r, 412)
        async with http.post(url + "/solve", json={}, headers={**h, "If-Match": new_etag}) as r:
            assert r.status == 202 and (await r.json())["changed"] is True
        async with http.post(url + "/solve", json={}, headers={**h, "If-Match": new_etag}) as r:
            assert r.status == 202 and (await r.json())["changed"] is False  # already solved


async def test_hostile_queries_and_ids_get_400(stack: Stack, served: Api) -> None:
    h = auth(served.admin)
    cases = {
        "/tickets?limit=-1": "limit", "/tickets?limit=abc": "limit", "/tickets?limit=0": "limit",
        "/tickets?limit=1001": "limit", "/tickets?limit=%EF%BC%91": "limit",
        "/tickets?colour=red": "unknown query parameter", "/tickets?status=op%00en": "NUL",
        "/tickets?limit=1&limit=2": "once", "/tickets?status=pending": "status",
        "/tickets?cursor=%%%": "cursor", "/tickets?cursor=WzEsMl0": "cursor",
        "/tickets?updated_since=yesterday": "RFC 3339",
        "/tickets?updated_since=2026-01-01T00:00:00": "time zone",
        "/tickets?updated_since=2026-01-01T00:00:00+00:00": "%2B",
        "/tickets/%C2%B2": "malformed ticket id", "/tickets/%00": "malformed ticket id",
        "/tickets/a%20b/events": "malformed ticket id", "/tickets/x?verbose=1": "unknown",
        "/messages/a%00b/raw": "malformed message id",
    }
    async with aiohttp.ClientSession() as http:
        for path, word in cases.items():
            async with http.get(served.url + path, headers=h) as r:
                await _problem(r, 400, word)
        async with http.get(served.url + "/tickets/12345678901234567890", headers=h) as r:
            await _problem(r, 404)
        for path in ("/tickets?requester=%ED%A0%80", "/tickets?mailbox=%FF%FE",
                     "/messages/%ED%A0%80/raw", "/messages/%FF/raw", "/tickets/%ED%A0%80",
                     "/tickets?updated_since=0001-01-01T00:00:00Z",
                     "/tickets?updated_since=9999-12-31T23:59:59-23:59",
                     "/tickets?cursor=Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ"):
            async with http.get(served.url + path, headers=h) as r:
                assert r.status in (200, 400, 404), (path, await r.text())


async def test_hostile_bodies_and_headers(stack: Stack, served: Api) -> None:
    await stack.intake.accept(mail("hb1@example.com"))
    (row,) = await eventually(lambda: _tickets(stack, 1))
    url, h = f"{served.url}/tickets/{row['id']}", auth(served.admin)
    async with aiohttp.ClientSession() as http:
        big = io.BytesIO(json.dumps({"text": "x" * (2 << 20)}).encode())
        async with http.post(url + "/reply", data=big, headers={
                **h, "Content-Type": "application/json"}) as r:
            await _problem(r, 413, "event")  # read fine (4 MiB limit), too big as an event
        async with http.post(url + "/reply", json={"text": "y" * (600 << 10)}, headers=h) as r:
            await _problem(r, 413, "event")
        async with http.post(url + "/reply", data=io.BytesIO(b"z" * (5 << 20)), headers=h) as r:
            await _problem(r, 413)
        async with http.post(url + "/solve", data=b"{nope", headers=h) as r:
            await _problem(r, 400, "malformed JSON")
        async with http.post(url + "/solve", json={"agent": 1}, headers=h) as r:
            await _problem(r, 400, "malformed JSON")
        async with http.post(url + "/reply", json={"text": "a\x00b"}, headers=h) as r:
            await _problem(r, 400, "NUL")
        async with http.post(served.url + "/inbound/postmark", data=b"{oops", headers=h) as r:
            await _problem(r, 400, "Postmark")
        async with http.post(served.url + "/inbound/postmark", json=[1, 2], headers=h) as r:
            await _problem(r, 400, "Postmark")
        async with http.post(served.url + "/inbound/mime", data=b"\x00\x01 no headers",
                             headers=h) as r:
            assert (await _problem(r, 422, "rejected"))["digest"]
        async with http.get(served.url + "/tickets", headers={**h, "Host": "evil.example"}) as r:
            await _problem(r, 421, "evil.example")
        async with http.get(served.url + "/healthz",
                            headers={"Host": f"localhost:{served.port}"}) as r:
            assert r.status == 200
        evil = {**h, "Origin": "https://evil.example"}
        async with http.post(url + "/solve", json={}, headers=evil) as r:
            await _problem(r, 403, "cross-site")
        same = {**h, "Origin": f"http://127.0.0.1:{served.port}"}
        async with http.post(url + "/solve", data="{}", headers={
                **same, "Content-Type": "text/plain"}) as r:
            await _problem(r, 403, "browser")
        async with http.post(url + "/solve", data=b"{}", headers={
                **h, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}) as r:
            await _problem(r, 403)
        async with http.post(url + "/solve", json={}, headers=same) as r:
            assert r.status == 202  # a same-origin JSON request is fine
    assert (await stack.store.load(str(row["id"]))).status == "solved"


async def test_slow_body_gets_408_and_slow_headers_are_cut_off(served: Api) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write((f"POST /inbound/mime HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
                  f"Authorization: Bearer {served.admin}\r\nContent-Length: 1000\r\n\r\n"
                  "From: a@example.com\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 10)
    assert head.startswith(b"HTTP/1.1 408"), head
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    assert time.monotonic() - started < 5
    writer.close()
