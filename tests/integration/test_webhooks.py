"""Webhook subscriptions on real servers: the CLI, filters, Standard Webhooks signatures,
CloudEvents structured mode, live changes, redelivery and per-ticket order under failures."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from standardwebhooks import Webhook as StandardWebhook

from tests.conftest import eventually, free_port
from tests.integration.test_outbound import fast_budget, reply
from tidydesk.common.events import (
    Event,
    TicketClosed,
    TicketOpened,
    TicketSolved,
    encode,
    envelope,
)
from tidydesk.common.settings import Settings
from tidydesk.notify import cli
from tidydesk.notify.app import serve

Cli = Callable[..., Awaitable[tuple[int, str, str]]]


class Receiver:
    """A real endpoint on loopback; keeps every request, fails those `fail` says to."""

    def __init__(self, fail: Callable[[int], bool] = lambda n: False) -> None:
        self.fail, self.requests = fail, 0
        self.got: list[tuple[bytes, dict[str, str]]] = []  # the answered-2xx ones
        self.url = f"http://user:pw@127.0.0.1:{free_port()}/hook?token=t0p"
        self.runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            self.requests += 1
            if self.fail(self.requests):
                return web.Response(status=503)
            self.got.append((body, dict(request.headers)))
            return web.Response(status=204)

        app = web.Application()
        app.add_routes([web.post("/hook", receive)])
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = int(self.url.split(":")[3].split("/")[0])
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def ids(self) -> list[str]:
        return [h["webhook-id"] for _, h in self.got]

    def verified(self, secret: str, ns: str) -> list[dict[str, Any]]:
        """Every delivery, checked as an integrator would: Standard Webhooks signature, then
        the CloudEvents SDK's HTTP binding (structured mode: no ce-* headers)."""
        out = []
        for body, headers in self.got:
            payload = StandardWebhook(secret).verify(body, headers)
            assert headers["Content-Type"] == "application/cloudevents+json"
            assert not [h for h in headers if h.lower().startswith("ce-")]
            event = from_http(HTTPMessage(headers=headers, body=body), JSONFormat())
            assert event.get_id() == headers["webhook-id"] == payload["id"]
            assert event.get_source() == f"/tidydesk/{ns}"
            assert event.get_type() == payload["type"]
            out.append(payload)
        return out


@pytest.fixture
def run_cli(nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Cli:
    """`tidydesk webhooks …` through cli.main, in a thread (it runs its own event loop)."""
    monkeypatch.setenv("TIDYDESK_NATS_URL", nats_url)
    monkeypatch.setenv("TIDYDESK_NAMESPACE", ns)
    monkeypatch.setenv("TIDYDESK_WEBHOOK_URLS", "")

    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def add(run_cli: Cli, url: str, *options: str) -> tuple[str, str]:
    """(id, secret) of a new subscription."""
    code, out, err = await run_cli("add", url, *options)
    assert code == 0, err
    sub_id = re.search(r"added webhook (\w+)", out)
    secret = re.search(r"whsec_\S+", out)
    assert sub_id and secret, out
    return sub_id.group(1), secret.group(0)


@pytest.fixture
async def notify(nc: Client, ns: str) -> AsyncIterator[None]:
    """The notify service's core in this loop: no static URLs, no SMTP relay."""
    settings = Settings.from_env({"TIDYDESK_NAMESPACE": ns})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        task = asyncio.create_task(serve(nc, nc.jetstream(), settings, http))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def publish(nc: Client, ns: str, event: Event, ticket: str, key: str) -> int:
    env = envelope(event, subject=ticket, key=key)
    ack = await nc.jetstream().publish(f"{ns}.tickets.{ticket}", encode(env))
    return ack.seq


def opened(ticket: str, mailbox: str) -> TicketOpened:
    return TicketOpened(ticket_id=ticket, number=1, subject="Printer", mailbox=mailbox,
                        requester="alice@example.com", message_id=f"{ticket}@example.com")


async def test_cli_needs_and_bounds_nats(run_cli: Cli, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.delenv("TIDYDESK_NATS_URL")
    code, _, err = await run_cli("list")
    assert code == 2 and "TIDYDESK_NATS_URL" in err
    monkeypatch.setenv("TIDYDESK_NATS_URL", f"nats://u:secret@127.0.0.1:{free_port()}")
    started = time.monotonic()
    code, _, err = await run_cli("list", "--timeout", "3")
    assert code == 1 and "cannot reach NATS" in err and "secret" not in err, err
    assert time.monotonic() - started < 5


async def test_add_list_remove(nc: Client, ns: str, run_cli: Cli) -> None:
    code, out, _ = await run_cli("list")
    assert code == 0 and "no webhook subscriptions" in out
    url = "https://user:pw@hooks.example.com/in?token=t0p"
    sub_id, secret = await add(run_cli, url, "--events", "ticket.solved,tidydesk.ticket.closed",
                               "--mailbox", "Sales+eu@Acme.example")
    assert len(StandardWebhook(secret)._whsecret) == 32
    durable = f"webhook-{sub_id}"
    info = await nc.jetstream().consumer_info(f"{ns.upper()}_EVENTS", durable)
    assert info.config.max_ack_pending == 1  # per-ticket order (see webhooks.py)

    code, out, _ = await run_cli("list")
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith(sub_id)]
    assert "https://hooks.example.com/in" in row and "pw" not in out and "t0p" not in out
    assert "ticket.solved,ticket.closed" in row and "sales@acme.example" in row
    assert durable in row and secret not in out

    code, _, err = await run_cli("add", "https://x.example/h", "--events", "ticket.opend")
    assert code == 2 and "unknown event type" in err
    code, _, err = await run_cli("add", "ftp://x.example/h")
    assert code == 2 and "http(s)" in err

    code, out, _ = await run_cli("remove", sub_id, "--timeout", "5")
    assert code == 0 and durable in out
    with pytest.raises(NotFoundError):
        await nc.jetstream().consumer_info(f"{ns.upper()}_EVENTS", durable)
    code, out, _ = await run_cli("list")
    assert "no webhook subscriptions" in out
    code, _, err = await run_cli("remove", sub_id)
    assert code == 1 and "no webhook" in err


async def test_filters_live_changes_and_redelivery(nc: Client, ns: str, run_cli: Cli,
                                                   notify: None) -> None:
    # ticket c was opened before any subscription: its mailbox comes from the stream
    await publish(nc, ns, opened("c", "sales@acme.example"), "c", "o")
    everything, solved, sales = [await Receiver().start() for _ in range(3)]
    try:
        # added while notify runs: delivery starts without a restart
        all_id, all_secret = await add(run_cli, everything.url)
        solved_id, solved_secret = await add(run_cli, solved.url, "--events", "ticket.solved")
        _, sales_secret = await add(run_cli, sales.url, "--mailbox", "sales@acme.example")
        events: list[tuple[Event, str]] = [
            (opened("a", "support@acme.example"), "a"), (opened("b", "sales+x@acme.example"), "b"),
            (TicketSolved(ticket_id="a"), "a"), (TicketSolved(ticket_id="b"), "b"),
            (TicketClosed(ticket_id="c"), "c")]
        seqs = [await publish(nc, ns, e, t, "k") for e, t in events]

        async def delivered() -> bool:
            return (len(everything.got), len(solved.got), len(sales.got)) == (5, 2, 3)

        await eventually(delivered)
        await asyncio.sleep(0.3)  # nothing more arrives
        assert [p["type"] for p in everything.verified(all_secret, ns)] == [
            "tidydesk.ticket.opened"] * 2 + ["tidydesk.ticket.solved"] * 2 + [
            "tidydesk.ticket.closed"]
        assert [p["subject"] for p in solved.verified(solved_secret, ns)] == ["a", "b"]
        assert [(p["subject"], p["type"]) for p in sales.verified(sales_secret, ns)] == [
            ("b", "tidydesk.ticket.opened"), ("b", "tidydesk.ticket.solved"),
            ("c", "tidydesk.ticket.closed")]
        with pytest.raises(Exception, match="signature"):
            StandardWebhook(sales_secret).verify(*everything.got[0])  # secrets per endpoint

        # one event again, by hand: same webhook-id, so the receiver can dedupe
        code, out, _ = await run_cli("redeliver", all_id, "--event", str(seqs[2]))
        assert code == 0 and "delivered" in out
        assert everything.ids()[-1] == everything.ids()[2]
        code, _, err = await run_cli("redeliver", solved_id, "--event", str(seqs[0]))
        assert code == 1 and "does not match" in err
        # everything again from a stream sequence, through notify, filters applied
        code, out, _ = await run_cli("redeliver", solved_id, "--from-seq", "1")
        assert code == 0

        async def again() -> bool:
            return len(solved.got) == 4

        await eventually(again)
        assert solved.ids()[2:] == solved.ids()[:2]
        solved.verified(solved_secret, ns)

        # removed while notify runs: delivery stops and the consumer stays gone
        code, _, _ = await run_cli("remove", all_id)
        assert code == 0
        await asyncio.sleep(0.5)
        await publish(nc, ns, TicketSolved(ticket_id="c"), "c", "late")
        await eventually(lambda: asyncio.sleep(0, len(solved.got) == 5))
        await asyncio.sleep(2.5)  # longer than a failed endpoint loop's restart delay
        assert len(everything.got) == 6
        with pytest.raises(NotFoundError):
            await nc.jetstream().consumer_info(f"{ns.upper()}_EVENTS", f"webhook-{all_id}")
    finally:
        for receiver in (everything, solved, sales):
            await receiver.stop()


async def test_per_ticket_order_holds_when_the_endpoint_fails_now_and_then(
        nc: Client, ns: str, run_cli: Cli) -> None:
    await fast_budget(nc, ns)  # endpoints copy it: 3 tries, 1 s apart
    flaky = await Receiver(fail=lambda n: n % 3 == 0).start()  # never twice in a row
    try:
        _, secret = await add(run_cli, flaky.url)  # before notify starts: picked up at start
        published: dict[str, list[str]] = {"t0": [], "t1": [], "t2": []}
        for n in range(30):
            ticket = f"t{n % 3}"
            env = envelope(reply(ticket, n), subject=ticket, key=f"r{n}")
            await nc.jetstream().publish(f"{ns}.tickets.{ticket}", encode(env))
            published[ticket].append(env.id)
        settings = Settings.from_env({"TIDYDESK_NAMESPACE": ns})
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            task = asyncio.create_task(serve(nc, nc.jetstream(), settings, http))
            try:
                await eventually(lambda: asyncio.sleep(0, len(set(flaky.ids())) == 30),
                                 within=40)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        got = flaky.verified(secret, ns)
        assert flaky.requests - len(got) >= 10  # a third of the attempts failed
        for ticket, ids in published.items():  # first deliveries (duplicates are allowed)
            assert list(dict.fromkeys(p["id"] for p in got if p["subject"] == ticket)) == ids
        assert {p["data"]["type"] for p in got} == {"reply.sent"}
    finally:
        await flaky.stop()
