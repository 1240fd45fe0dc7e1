"""Agent replies go out by SMTP with threading headers; customers' answers come back in.
Webhooks: one consumer per endpoint, so a down endpoint delays and parks only its own events."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.aio.client import Client
from standardwebhooks import Webhook as StandardWebhook

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common import parking
from tidydesk.common.events import ReplySent, TicketSolved, encode, envelope
from tidydesk.common.settings import Settings
from tidydesk.notify.app import MAIL, serve
from tidydesk.notify.subscriptions import as_whsec


class Sink:
    """A real SMTP server on loopback that keeps what it is given (the relay)."""

    def __init__(self) -> None:
        self.mails: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails.append(envelope.original_content or b"")
        return "250 OK"

    def by_message_id(self) -> Counter[str]:
        """How often each Message-ID arrived."""
        return Counter(str(message_from_bytes(m, policy=policy.default)["Message-ID"])
                       for m in self.mails)

    async def start(self) -> tuple[asyncio.Server, int]:
        port = free_port()
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(self), "127.0.0.1", port)
        return server, port


VERIFY = StandardWebhook(as_whsec("s3cret"))  # how an integrator checks TIDYDESK_WEBHOOK_SECRET


async def fast_budget(nc: Client, ns: str, backoff: float = 1.0) -> None:
    """Three tries, `backoff` apart, for notify-mail and so for every endpoint (they copy it).
    The first backoff is also the ack deadline: below about 1 s, the console logger
    rendering a failure's traceback (with locals) holds the shared event loop long enough
    for the server to redeliver an event that is being handled."""
    js = nc.jetstream()
    cfg = (await js.consumer_info(f"{ns.upper()}_EVENTS", MAIL)).config
    cfg.max_deliver, cfg.backoff = 3, [backoff, backoff]
    await js.add_consumer(f"{ns.upper()}_EVENTS", cfg)


def durable_for(url: str) -> str:
    """The consumer of a TIDYDESK_WEBHOOK_URLS endpoint (the digest of its URL)."""
    return "webhook-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def notify_settings(ns: str, smtp_port: int, *urls: str) -> Settings:
    return Settings.from_env({"TIDYDESK_NAMESPACE": ns, "TIDYDESK_WEBHOOK_SECRET": "s3cret",
                              "TIDYDESK_WEBHOOK_URLS": ",".join(urls),
                              "TIDYDESK_SMTP_RELAY": f"127.0.0.1:{smtp_port}"})


def reply(ticket: str, n: int) -> ReplySent:
    return ReplySent(ticket_id=ticket, message_id=f"r{n}.{ticket}@acme.example", agent="kim",
                     text=f"Answer {n}", sender="support@acme.example",
                     to="alice@example.com", subject=f"Re: case {ticket}",
                     reply_to="support+tok@acme.example")


async def publish(nc: Client, ns: str, event: ReplySent | TicketSolved, key: str) -> str:
    env = envelope(event, subject=event.ticket_id, key=key)
    await nc.jetstream().publish(f"{ns}.tickets.{event.ticket_id}", encode(env))
    return env.id


async def consumers_exist(nc: Client, ns: str, *durables: str) -> None:
    """Wait until serve() created the webhook consumers (they start at new events)."""
    async def check() -> bool:
        names = {c.name for c in await nc.jetstream().consumers_info(f"{ns.upper()}_EVENTS")}
        return names.issuperset(durables)

    await eventually(check)


@pytest.fixture
async def notify(stack: Stack, nc: Client
                 ) -> AsyncIterator[tuple[Sink, list[tuple[bytes, dict[str, str]]]]]:
    sink, hooks_seen = Sink(), []
    server, smtp_port = await sink.start()
    hook_port = free_port()

    async def receive(request: web.Request) -> web.Response:
        hooks_seen.append((await request.read(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.add_routes([web.post("/hook", receive)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    settings = notify_settings(stack.ns, smtp_port, f"http://127.0.0.1:{hook_port}/hook")
    async with aiohttp.ClientSession() as http:
        task = asyncio.create_task(serve(nc, stack.js, settings, http))
        await consumers_exist(nc, stack.ns, durable_for(settings.webhook_urls[0]))
        yield sink, hooks_seen
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await runner.cleanup()
    server.close()


async def test_reply_is_mailed_and_answers_thread_back(
        stack: Stack, api: str, api_headers: dict[str, str],
        notify: tuple[Sink, list[tuple[bytes, dict[str, str]]]]) -> None:
    sink, hooks = notify
    await stack.intake.accept(mail("o1@example.com", "My order never arrived."))
    (row,) = await eventually(stack.tickets)
    async with aiohttp.ClientSession(headers=api_headers) as http:
        body = {"text": "We resent it today.", "agent": "kim", "idempotency_key": "r1"}
        async with http.post(f"{api}/tickets/{row['number']}/reply", json=body) as r:
            sent: dict[str, Any] = await r.json()
        async with http.post(f"{api}/tickets/{row['id']}/reply", json=body) as r:
            assert (await r.json())["message_id"] == sent["message_id"]  # retried: one reply
        async with http.post(f"{api}/tickets/{row['id']}/reply", json={"text": " "}) as r:
            assert r.status == 400

    await eventually(lambda: _ready(sink.mails))
    out = message_from_bytes(sink.mails[0], policy=policy.default)
    assert out["Message-ID"] == f"<{sent['message_id']}>"
    assert out["In-Reply-To"] == "<o1@example.com>" and out["Reply-To"] == sent["reply_to"]
    assert out["To"] == "alice@example.com" and f"[#{row['number']}]" in out["Subject"]
    assert out.get_content().strip() == "We resent it today."

    # the customer answers the mailed reply, then writes fresh to the reply-to address
    await stack.intake.accept(mail("o2@example.com", "Thanks, which carrier?",
                                   in_reply_to=sent["message_id"]))
    await stack.intake.accept(mail("o3@example.com", "Also: can I change the address?",
                                   subject="Address change"), mailbox=sent["reply_to"])

    async def four() -> bool:
        rows = await stack.tickets()
        return len(rows) == 1 and rows[0]["message_count"] == 4 and await _count(stack) == 4

    await eventually(four)
    methods = {r["message_id"]: r["threaded_by"] for r in await stack.pool.fetch(
        "SELECT message_id, threaded_by FROM messages")}
    assert methods["o2@example.com"] == "in-reply-to"
    assert methods["o3@example.com"] == "reply-token"
    assert methods[sent["message_id"]] == "reply.sent"

    await eventually(lambda: _ready(hooks))
    payload, headers = hooks[0]
    assert VERIFY.verify(payload, headers)["specversion"] == "1.0"
    assert headers["webhook-id"] == json.loads(payload)["id"]


async def _ready(items: list[Any]) -> bool:
    return bool(items)


async def _count(stack: Stack) -> int:
    return int(await stack.pool.fetchval("SELECT count(*) FROM messages"))


class Endpoint:
    """A real webhook receiver on loopback answering `status`; counts deliveries by
    webhook-id, each verified as Standard Webhooks says."""

    def __init__(self, port: int, status: int = 204) -> None:
        self.port, self.status, self.seen = port, status, Counter[str]()
        self.url = f"http://127.0.0.1:{port}/hook"
        self.runner: web.AppRunner | None = None

    async def start(self) -> Endpoint:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            VERIFY.verify(body, dict(request.headers))
            self.seen[request.headers["webhook-id"]] += 1
            return web.Response(status=self.status)

        app = web.Application()
        app.add_routes([web.post("/hook", receive)])
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_down_endpoint_delays_nothing_else_parks_and_is_retried(
        nc: Client, ns: str) -> None:
    js, sink = nc.jetstream(), Sink()
    await fast_budget(nc, ns)
    smtp, smtp_port = await sink.start()
    healthy = await Endpoint(free_port()).start()
    gone = await Endpoint(free_port(), status=410).start()
    down = Endpoint(free_port())  # nothing listens yet: connection refused
    settings = notify_settings(ns, smtp_port, down.url, healthy.url, gone.url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        task = asyncio.create_task(serve(nc, js, settings, http))
        try:
            await consumers_exist(nc, ns, *(durable_for(u) for u in settings.webhook_urls))
            started = time.monotonic()
            ids = [await publish(nc, ns, reply(f"t{n}", n), f"r{n}") for n in range(3)]
            ids += [await publish(nc, ns, TicketSolved(ticket_id=f"t{n}"), f"s{n}")
                    for n in range(3)]

            async def mailed_and_posted() -> bool:
                return len(sink.mails) == 3 and set(healthy.seen) == set(ids)

            await eventually(mailed_and_posted, within=5)
            print(f"mail and healthy endpoint done in {time.monotonic() - started:.2f}s")
            assert set(sink.by_message_id().values()) == {1}

            async def parked() -> list[parking.Parked]:
                rows = [r for _, r in await parking.records(js, ns)]
                return rows if len(rows) == 12 else []

            # 6 events x (down after 3 tries, gone at once); an endpoint's events go one by
            # one (per-ticket order), so the down one takes about 6 x 2 x 1 s
            rows = await eventually(parked, within=40)
            assert {r.consumer for r in rows} == {durable_for(down.url), durable_for(gone.url)}
            assert {r.attempts for r in rows if r.consumer == durable_for(down.url)} == {3}
            # a 410 parks at once, before the budget of 3 (a redelivery on a loaded machine
            # may come first)
            assert all(r.attempts < 3 for r in rows if r.consumer == durable_for(gone.url))
            assert all("410" in r.error for r in rows if r.consumer == durable_for(gone.url))
            # others' retries (3 tries x 6 events each) never re-post here; the healthy
            # endpoint's own at-least-once redelivery (a slow, loaded machine) may, rarely
            assert sum(healthy.seen.values()) <= len(ids) + 1
            assert len(sink.mails) == 3  # nor re-mail

            await down.start()  # the endpoint is back: the operator retries its events
            for record_seq, record in await parking.records(js, ns):
                if record.consumer == durable_for(down.url):
                    args = argparse.Namespace(action="retry", id=record_seq)
                    assert await asyncio.wait_for(parking._run(nc, ns, args), 10) == 0
            assert set(down.seen) == set(ids) and set(down.seen.values()) == {1}
            assert {r.consumer for _, r in await parking.records(js, ns)} == {
                durable_for(gone.url)}
            assert sum(healthy.seen.values()) <= len(ids) + 1 and len(sink.mails) == 3
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for endpoint in (healthy, gone, down):
                await endpoint.stop()
            smtp.close()
