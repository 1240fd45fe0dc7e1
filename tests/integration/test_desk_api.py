"""The helpdesk read side on real servers: tags and assignment as events, queue filters,
GET /stats, GET /customers/{address}, the event feed, and the page's cookie sign-in."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from aiohttp import web
from nats.aio.client import Client

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.events import AgentThanked, TicketSolved
from tidydesk.common.store import KvIndex
from tidydesk.desk import config as desk_config
from tidydesk.desk.hours import KEY, HoursConfig, make_hours
from tidydesk.queue.api import build, runner
from tidydesk.queue.auth import TokenStore
from tidydesk.queue.desk import percentiles
from tidydesk.queue.projection import rebuild
from tidydesk.tickets.tokens import shared_secret

Json = dict[str, Any]


@pytest.fixture
async def desk(nc: Client, pool: asyncpg.Pool, ns: str) -> AsyncIterator[Stack]:
    """The stack with the content-aware policy: a thank-you is acknowledged, not a reopen."""
    s = Stack(nc, pool, ns, policy="content-aware")
    tasks = await s.tasks()
    yield s
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=15)


@pytest.fixture
async def url(desk: Stack) -> AsyncIterator[str]:
    """The API as app.py serves it, Host check on."""
    index = KvIndex(desk.js, desk.ns)
    port = free_port()
    app = build(desk.pool, desk.store, desk.intake.raw, desk.intake, 1 << 20,
                await shared_secret(index), index,
                hosts=frozenset({f"127.0.0.1:{port}"}))
    server = runner(app)
    await server.setup()
    await web.TCPSite(server, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await server.cleanup()


async def token(stack: Stack, *scopes: str, tenant: str = "") -> dict[str, str]:
    secret, _ = await TokenStore(stack.js, stack.ns).create(scopes, tenant)
    return {"Authorization": f"Bearer {secret}"}


async def call(http: aiohttp.ClientSession, method: str, url: str, status: int,
               **kw: Any) -> Json:
    async with http.request(method, url, **kw) as r:
        body: Json = await r.json(content_type=None)
        assert r.status == status, body
        return body


async def open_ticket(stack: Stack, message_id: str, body: str, sender: str = "alice@example.com",
                      subject: str = "Printer broken") -> str:
    await stack.intake.accept(mail(message_id, body, sender=sender, subject=subject))

    async def opened() -> str | None:
        value = await stack.pool.fetchval(
            "SELECT ticket_id FROM messages WHERE message_id = $1", message_id)
        return str(value) if value else None

    return str(await eventually(opened))


async def projected(stack: Stack, ticket_id: str) -> None:
    """Wait until the projection holds the ticket's last event."""
    version = (await stack.store.load(ticket_id)).version

    async def there() -> bool:
        return bool(await stack.pool.fetchval("SELECT 1 FROM events WHERE seq = $1", version))

    await eventually(there)


async def test_tags_and_assignment_are_events_and_filter_the_queue(
        desk: Stack, url: str, database_url: str) -> None:
    tid = await open_ticket(desk, "t1@example.com", "The printer is jammed again.")
    other = await open_ticket(desk, "t2@example.com", "Where is my invoice?",
                              sender="bob@example.com", subject="Invoice")
    await desk_config.change(desk.js, desk.ns, lambda c: msgspec.structs.replace(
        c, agents={"kim": desk_config.Agent(name="kim", email="kim@acme.example")}))
    async with aiohttp.ClientSession(headers=await token(desk, "read", "write")) as http:
        first = await call(http, "POST", f"{url}/tickets/{tid}/tags", 202,
                           json={"tag": "hardware", "agent": "kim"})
        assert first == {"id": tid, "tag": "hardware", "tags": ["hardware"], "changed": True}
        again = await call(http, "POST", f"{url}/tickets/{tid}/tags", 202,
                           json={"tag": "hardware", "agent": "kim"})
        assert again["changed"] is False  # idempotent by state
        await call(http, "POST", f"{url}/tickets/{tid}/tags", 202, json={"tag": "프린터"})
        assigned = await call(http, "POST", f"{url}/tickets/{tid}/assign", 202,
                              json={"agent": "kim", "by": "lee"})
        assert assigned == {"id": tid, "assignee": "kim", "changed": True}
        await projected(desk, tid)

        page = await call(http, "GET", f"{url}/tickets?tag=hardware", 200)
        assert [t["id"] for t in page["tickets"]] == [tid]
        assert page["tickets"][0]["tags"] == ["hardware", "프린터"]
        assert page["tickets"][0]["assignee"] == "kim"
        page = await call(http, "GET", f"{url}/tickets?assignee=KIM", 200)
        assert [t["id"] for t in page["tickets"]] == [tid]
        page = await call(http, "GET", f"{url}/tickets", 200)
        assert {t["id"] for t in page["tickets"]} == {tid, other}

        removed = await call(http, "DELETE", f"{url}/tickets/{tid}/tags/hardware", 202,
                             json={"agent": "kim"})
        assert removed["tags"] == ["프린터"] and removed["changed"] is True
        await call(http, "DELETE", f"{url}/tickets/{tid}/tags/hardware", 202)  # no-op
        await projected(desk, tid)
        assert (await call(http, "GET", f"{url}/tickets?tag=hardware", 200))["tickets"] == []

        # bad input: a clear 400, a stale version 412, nothing recorded
        version = (await desk.store.load(tid)).version
        for body in ({"tag": ""}, {"tag": "-x"}, {"tag": "a" * 80}, {"tag": "x", "extra": 1}):
            await call(http, "POST", f"{url}/tickets/{tid}/tags", 400, json=body)
        await call(http, "POST", f"{url}/tickets/{tid}/assign", 400, json={"agent": " "})
        unknown = await call(http, "POST", f"{url}/tickets/{tid}/assign", 400,
                             json={"agent": "nobody"})
        assert "unknown agent 'nobody'" in unknown["detail"]
        await call(http, "POST", f"{url}/tickets/{tid}/assign", 400,
                   json={"agent": "kim", "team": "nowhere"})
        await call(http, "POST", f"{url}/tickets/{tid}/tags", 412, json={"tag": "late"},
                   headers={"If-Match": '"1"'})
        await call(http, "GET", f"{url}/tickets?tags=x", 400)
        assert (await desk.store.load(tid)).version == version
        events = await call(http, "GET", f"{url}/tickets/{tid}/events", 200)
        types = [e["type"] for e in events["events"]]
        assert types.count("tidydesk.ticket.tagged") == 2
        assert types.count("tidydesk.ticket.untagged") == 1
        assigned_event = next(e for e in events["events"]
                              if e["type"] == "tidydesk.ticket.assigned")
        assert assigned_event["data"]["by"] == "agent:lee"

    async with aiohttp.ClientSession(headers=await token(desk, "read")) as http:
        await call(http, "POST", f"{url}/tickets/{tid}/tags", 403, json={"tag": "x"})

    # a rebuild from the stream gives the same tags and ticket columns
    live = await desk.pool.fetch("SELECT * FROM ticket_tags ORDER BY ticket_id, tag")
    tickets = await desk.pool.fetch("SELECT * FROM tickets ORDER BY number")
    await rebuild(desk.js, database_url, desk.ns)
    assert await desk.pool.fetch("SELECT * FROM ticket_tags ORDER BY ticket_id, tag") == live
    assert await desk.pool.fetch("SELECT * FROM tickets ORDER BY number") == tickets


async def _decided(stack: Stack, tid: str, message_id: str) -> None:
    async def done() -> bool:
        return message_id in (await stack.store.load(tid)).decided

    await eventually(done)


async def test_stats_customers_and_feed(desk: Stack, url: str) -> None:
    # business hours for the mailbox, so the times come in business seconds as well
    kv = await desk.js.key_value(f"{desk.ns}_config")
    await kv.put(KEY, msgspec.json.encode(HoursConfig(mailboxes={
        "support@acme.example": make_hours("Asia/Seoul", "mon-sun 00:00-24:00")})))
    a = await open_ticket(desk, "s1@example.com", "The printer is jammed again.")
    b = await open_ticket(desk, "s2@example.com", "프린터가 또 고장났어요.",
                          sender="carol@example.com", subject="프린터 고장")
    async with aiohttp.ClientSession(headers=await token(desk, "read", "write")) as http:
        await call(http, "POST", f"{url}/tickets/{a}/reply", 202,
                   json={"text": "Please try turning it off and on.", "agent": "kim"})
        await call(http, "POST", f"{url}/tickets/{a}/tags", 202, json={"tag": "hardware"})
        await call(http, "POST", f"{url}/tickets/{b}/tags", 202, json={"tag": "hardware"})
        for tid in (a, b):
            await call(http, "POST", f"{url}/tickets/{tid}/solve", 202, json={"agent": "kim"})
    # alice thanks (acknowledged: no reopen), carol has a real question (a reopen)
    await desk.intake.accept(mail("s1-re@example.com", "Thank you so much!",
                                  in_reply_to="s1@example.com"))
    await desk.intake.accept(mail("s2-re@example.com", "아직도 안 돼요. 종이가 걸려서 인쇄가 "
                                  "안 됩니다. 어떻게 해야 하나요?", sender="carol@example.com",
                                  subject="Re: 프린터 고장", in_reply_to="s2@example.com"))
    await _decided(desk, a, "s1-re@example.com")
    await _decided(desk, b, "s2-re@example.com")
    # the desk engine credits the solver of an acknowledged thank-you (as tidydesk.desk does)
    await desk.store.decide(a, lambda t: [(AgentThanked(
        ticket_id=a, agent="kim", message_id="s1-re@example.com"), "thanked:s1-re")])
    await projected(desk, a)
    await projected(desk, b)

    async with aiohttp.ClientSession(headers=await token(desk, "read")) as http:
        stats = await call(http, "GET", f"{url}/stats", 200)
        assert stats["totals"] == {"opened": 2, "solved": 2, "reopened": 1, "acknowledged": 1,
                                   "split": 0, "merged": 0}, stats
        assert stats["reopen_rate"] == 0.5
        today = datetime.now(UTC).date().isoformat()
        (day,) = [d for d in stats["per_day"] if d["opened"]]
        assert day["day"] == today and day["solved"] == 2 and len(stats["per_day"]) == 30
        assert stats["by_language"]["ko"]["opened"] == 1
        assert stats["by_language"]["en"]["acknowledged"] == 1
        assert stats["by_tag"]["hardware"]["solved"] == 2
        assert stats["by_tag"]["hardware"]["reopened"] == 1
        assert stats["kudos"] == {"kim": 1}
        assert stats["rising"] == [{"tag": "hardware", "this_week": 2, "last_week": 0,
                                    "change": 2}]
        first = stats["first_response"]
        assert first["wall"]["count"] == 1 and first["wall"]["p50"] > 0
        assert first["business"]["count"] == 1  # open around the clock: business = wall
        assert first["business"]["p50"] == pytest.approx(first["wall"]["p50"], abs=1e-3)
        # carol's ticket was reopened: resolved is alice's only
        assert stats["resolution"]["wall"]["count"] == 1

        # a mailbox without hours: wall only; another period: nothing
        other = await call(http, "GET", f"{url}/stats?mailbox=sales@acme.example", 200)
        assert other["totals"]["opened"] == 0 and other["first_response"]["business"] is None
        old = (datetime.now(UTC) - timedelta(days=90)).date().isoformat()
        past = await call(http, "GET", f"{url}/stats?since={old}&until={old}", 200)
        assert past["totals"]["opened"] == 0 and len(past["per_day"]) == 1
        for bad in ("since=2026-13-01", "until=yesterday", "since=2026-02-01&until=2026-01-01",
                    "since=2020-01-01&until=2026-01-01", "days=3", "until=0001-01-01",
                    "since=9999-12-31&until=9999-12-31"):
            await call(http, "GET", f"{url}/stats?{bad}", 400)

        alice = await call(http, "GET", f"{url}/customers/Alice@Example.com", 200)
        assert alice["address"] == "alice@example.com"
        assert [t["id"] for t in alice["tickets"]] == [a]
        assert alice["tickets"][0]["last_decision"] == "acknowledge"
        assert alice["tickets"][0]["tags"] == ["hardware"]
        assert alice["languages"] == ["en"] and alice["tags"] == {"hardware": 1}
        assert alice["decisions"] == {"acknowledge": 1} and alice["last_contact"]
        carol = await call(http, "GET", f"{url}/customers/carol@example.com", 200)
        assert carol["languages"] == ["ko"] and carol["decisions"] == {"reopen": 1}
        await call(http, "GET", f"{url}/customers/nobody@example.com", 404)
        await call(http, "GET", f"{url}/customers/not-an-address", 400)

        feed = await call(http, "GET", f"{url}/events?limit=1000", 200)
        seqs = [e["seq"] for e in feed["events"]]
        assert seqs == sorted(seqs) and "tidydesk.agent.thanked" in {
            e["type"] for e in feed["events"]}
        tail = await call(http, "GET", f"{url}/events?after={seqs[-2]}", 200)
        assert [e["seq"] for e in tail["events"]] == seqs[-1:]
        latest = await call(http, "GET", f"{url}/events?limit=2", 200)  # no `after`: the last
        assert [e["seq"] for e in latest["events"]] == seqs[-2:]
        await call(http, "GET", f"{url}/events?after=-1", 400)

    # another tenant's token sees none of it
    async with aiohttp.ClientSession(headers=await token(desk, "read", tenant="other.example")
                                     ) as http:
        stats = await call(http, "GET", f"{url}/stats", 200)
        assert stats["totals"]["opened"] == 0 and stats["kudos"] == {}
        await call(http, "GET", f"{url}/customers/alice@example.com", 404)
        assert (await call(http, "GET", f"{url}/events", 200))["events"] == []


async def test_page_sign_in_moves_the_token_into_a_same_origin_cookie(
        desk: Stack, url: str) -> None:
    tid = await open_ticket(desk, "c1@example.com", "Hello")
    secret, _ = await TokenStore(desk.js, desk.ns).create(("read", "write"))
    jar = aiohttp.CookieJar(unsafe=True)  # 127.0.0.1: an IP address host
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{url}/?token=tdk_wrong", allow_redirects=False) as r:
            assert r.status == 401 and not r.cookies
        async with http.get(f"{url}/?token={secret}", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        async with http.get(f"{url}/") as r:
            assert r.status == 200 and "Content-Security-Policy" in r.headers
            assert "<script src=\"/page/app.js\"" in await r.text()
        for name in ("app.js", "style.css"):
            async with http.get(f"{url}/page/{name}") as r:
                assert r.status == 200
        await call(http, "GET", f"{url}/page/secret.txt", 404)
        await call(http, "GET", f"{url}/page/..%2Fdesk.py", 404)
        await call(http, "GET", f"{url}/stats", 200)  # the cookie signs in
        await call(http, "GET", f"{url}/stats", 401, headers={"Sec-Fetch-Site": "cross-site"})
        origin = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
        await call(http, "POST", f"{url}/tickets/{tid}/tags", 202, json={"tag": "x"},
                   headers=origin)
        # a POST that does not name this origin does not get the cookie's authority
        await call(http, "POST", f"{url}/tickets/{tid}/tags", 401, json={"tag": "y"})
        await call(http, "POST", f"{url}/tickets/{tid}/tags", 403, json={"tag": "y"},
                   headers={"Origin": "http://evil.example"})
        await call(http, "POST", f"{url}/tickets/{tid}/tags", 403, data="tag=y",
                   headers={**origin, "Content-Type": "application/x-www-form-urlencoded"})


def test_percentiles_nearest_rank() -> None:
    assert percentiles([]).p50 is None
    p = percentiles([5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert (p.count, p.p50, p.p90) == (10, 5.0, 9.0)
    assert percentiles([7.0]).p90 == 7.0


async def test_solved_then_reopened_counts_in_the_projection(desk: Stack) -> None:
    tid = await open_ticket(desk, "r1@example.com", "The scanner is broken.")
    await desk.store.decide(tid, lambda t: [(TicketSolved(ticket_id=tid, agent="kim"), "s")])
    await desk.intake.accept(mail("r1-re@example.com", "It broke again today, the scanner "
                                  "shows error 42 when I start it.", in_reply_to="r1@example.com"))
    await _decided(desk, tid, "r1-re@example.com")
    await projected(desk, tid)
    row = await desk.pool.fetchrow("SELECT * FROM tickets WHERE id = $1", tid)
    assert row is not None
    assert row["reopen_count"] == 1 and row["solved_at"] is None and row["status"] == "open"
    assert row["language"] == "en" and row["first_response_at"] is None


async def test_tidydesk_stats_prints_what_the_api_answers(desk: Stack, url: str) -> None:
    tid = await open_ticket(desk, "k1@example.com", "프린터가 고장났어요.")
    await desk.store.decide(tid, lambda t: [(TicketSolved(ticket_id=tid, agent="kim"), "s")])
    await projected(desk, tid)
    headers = await token(desk, "read")
    env = {**os.environ, "TIDYDESK_HTTP_HOST": "127.0.0.1",
           "TIDYDESK_HTTP_PORT": url.rsplit(":", 1)[1],
           "TIDYDESK_API_TOKEN": headers["Authorization"].split()[1]}

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tidydesk.cli", "stats", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli()
    assert code == 0, err
    assert "opened 1  solved 1  reopened 0  acknowledged 0  split 0  merged 0" in out
    assert "reopen rate 0%" in out and "ko " in out and "per day:" in out
    code, out, err = await cli("--json", "--mailbox", "support@acme.example")
    assert code == 0 and json.loads(out)["totals"]["opened"] == 1
    code, out, err = await cli("--since", "yesterday")
    assert code == 1 and "since must be a date YYYY-MM-DD" in err
    env["TIDYDESK_API_TOKEN"] = ""
    code, out, err = await cli()
    assert code == 1 and "401" in err and "TIDYDESK_API_TOKEN" in err
