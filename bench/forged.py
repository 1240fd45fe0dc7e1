"""Forged senders: what each attempt to write into a stranger's ticket gets.

    .venv/bin/python -m bench.forged

Lee opens a ticket at support@acme.example and an agent answers it through the HTTP API
(so the ticket has a reply token and a support address has written in it). Then an attacker
tries the known ways in: a forged In-Reply-To naming Lee's mail, a forged `[#N]` subject, a
garbled reply token, a valid token copied onto another tenant's address, a cross-tenant
In-Reply-To link, `From: support@acme.example` with `[#N]`, and Lee's own From address with
a DMARC failure written by the trusted relay. Lee's real reply is the control. Each row
says what the attempt got (held / rejected / threaded / new ticket) and whether anything
was threaded into a stranger's ticket.

The services' cores (threading, policy, projection) and the HTTP API run in this process on
the servers named by TIDYDESK_NATS_URL / TIDYDESK_DATABASE_URL, else on an embedded
nats-server -js and PostgreSQL in a temporary directory; everything listens on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg

from bench._common import drop_namespace, machine, new_namespace, quiet_logs, servers, table
from tidydesk.common import db
from tidydesk.common.events import MessageRejected
from tidydesk.common.store import KvIndex
from tidydesk.ingest.intake import Intake
from tidydesk.tickets.mailbox import tenant

VICTIM = "lee@example.com"
ATTACKER = "eve@evil.example"
SUPPORT = "support@acme.example"
RELAY = "mx.acme.example"  # the authserv-id the deployment trusts (TIDYDESK_TRUSTED_AUTHSERV)
SETTLE = 20.0  # s to wait for one mail to be placed


@dataclass(frozen=True)
class Attempt:
    name: str
    message_id: str
    sender: str
    mailbox: str
    subject: str
    in_reply_to: str = ""
    headers: str = ""
    control: bool = False  # the requester writing: threading it is right


@dataclass(frozen=True)
class Row:
    attempt: str
    outcome: str  # held | rejected | threaded | new ticket
    into_strangers_ticket: bool
    detail: str


def raw_mail(a: Attempt) -> bytes:
    head = (f"From: <{a.sender}>\r\nTo: {a.mailbox}\r\nSubject: {a.subject}\r\n"
            f"Message-ID: <{a.message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n")
    if a.in_reply_to:
        head += f"In-Reply-To: <{a.in_reply_to}>\r\nReferences: <{a.in_reply_to}>\r\n"
    return (head + a.headers + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Please send the invoice to my new address.\r\n").encode()


def attempts(number: int, opener: str, reply_id: str, reply_to: str) -> list[Attempt]:
    """The forged attempts on ticket #`number` (Lee's mail `opener`, the agent's reply
    `reply_id` sent with Reply-To `reply_to`), and Lee's own reply as the control."""
    token = reply_to.split("+", 1)[1].split("@", 1)[0]
    garbled = re.sub(r"\.[0-9a-f]{12}$", ".0123456789ab", token)
    subject = f"Re: [#{number}] Kettle"
    fail = (f"Authentication-Results: {RELAY}; dkim=none; spf=softfail "
            f"smtp.mailfrom=example.com; dmarc=fail (p=reject) header.from=example.com\r\n")
    return [
        Attempt("forged In-Reply-To (Lee's Message-ID) from a stranger", "f1@evil.example",
                ATTACKER, SUPPORT, "Re: Kettle", in_reply_to=opener),
        Attempt("forged [#N] subject from a stranger", "f2@evil.example", ATTACKER, SUPPORT,
                subject),
        Attempt("garbled reply token", "f3@evil.example", ATTACKER,
                f"support+{garbled}@acme.example", "Re: Kettle"),
        Attempt("valid reply token on another tenant's address", "f4@evil.example",
                ATTACKER, f"help+{token}@other.example", "Re: Kettle"),
        Attempt("cross-tenant In-Reply-To (Lee's Message-ID, other tenant)",
                "f5@evil.example", ATTACKER, "help@other.example", "Re: Kettle",
                in_reply_to=opener),
        Attempt("From: support@acme.example plus [#N]", "f6@evil.example", SUPPORT, SUPPORT,
                subject),
        Attempt("Lee's From with dmarc=fail from the trusted relay, In-Reply-To",
                "f7@evil.example", VICTIM, SUPPORT, "Re: Kettle", in_reply_to=reply_id,
                headers=fail),
        Attempt("control: Lee's real reply to the agent", "lee-2@example.com", VICTIM,
                SUPPORT, "Re: Kettle", in_reply_to=reply_id, control=True),
    ]


async def _placed(pool: asyncpg.Pool, a: Attempt) -> asyncpg.Record:
    """The mail's row once threading has placed it (in a ticket, held or recorded)."""
    deadline = time.monotonic() + SETTLE
    while True:
        row = await pool.fetchrow(
            "SELECT m.ticket_id, m.threaded_by, t.number, t.requester, t.mailbox FROM messages m"
            " LEFT JOIN tickets t ON t.id = m.ticket_id WHERE m.message_id = $1 AND m.tenant = $2"
            " AND (m.ticket_id IS NOT NULL OR m.threaded_by = 'auto')",
            a.message_id, tenant(a.mailbox))
        if row is not None and (row["ticket_id"] is None or row["number"] is not None):
            return row
        if time.monotonic() > deadline:
            raise TimeoutError(f"{a.message_id} was not placed within {SETTLE:.0f} s")
        await asyncio.sleep(0.05)


async def _opened(pool: asyncpg.Pool, message_id: str) -> asyncpg.Record:
    deadline = time.monotonic() + SETTLE
    while (row := await pool.fetchrow(
            "SELECT t.id, t.number FROM messages m JOIN tickets t ON t.id = m.ticket_id"
            " WHERE m.message_id = $1", message_id)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message_id} opened no ticket within {SETTLE:.0f} s")
        await asyncio.sleep(0.05)
    return row


async def run(intake: Intake, pool: asyncpg.Pool, api: str, token: str) -> list[Row]:
    """Every attempt against a fresh ticket of Lee's; one row each."""
    opener = "lee-1@example.com"
    await intake.accept(raw_mail(Attempt("open", opener, VICTIM, SUPPORT, "Kettle")),
                        mailbox=SUPPORT)
    victim = await _opened(pool, opener)
    async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
                http.post(f"{api}/tickets/{victim['id']}/reply",
                          json={"text": "We will send a new kettle.", "agent": "kim"}) as r):
        assert r.status == 202, await r.text()
        answer = await r.json()
    rows = []
    for a in attempts(int(victim["number"]), opener, answer["message_id"], answer["reply_to"]):
        event, _ = await intake.accept(raw_mail(a), mailbox=a.mailbox)
        if isinstance(event, MessageRejected):
            rows.append(Row(a.name, "rejected", False, event.reason))
            continue
        placed = await _placed(pool, a)
        into_victim = placed["ticket_id"] == victim["id"]
        if placed["threaded_by"] == "held":
            outcome, detail = "held", f"held on #{placed['number']} for an agent"
        elif placed["ticket_id"] is None:
            outcome, detail = "recorded", "auto-reply, no ticket"
        elif into_victim:
            outcome, detail = "threaded", f"joined #{placed['number']} ({placed['threaded_by']})"
        else:
            outcome = "new ticket"
            detail = (f"#{placed['number']} opened for {placed['requester']} "
                      f"({tenant(placed['mailbox'])})")
        rows.append(Row(a.name, outcome, into_victim and outcome == "threaded"
                        and not a.control, detail))
    return rows


def print_table(rows: list[Row]) -> None:
    print(table(("attempt", "outcome", "threaded into a stranger's ticket", "detail"),
                [(r.attempt, r.outcome, "YES" if r.into_strangers_ticket else "no", r.detail)
                 for r in rows]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def desk(nats_url: str, database_url: str) -> AsyncIterator[tuple[Intake, asyncpg.Pool,
                                                                        str, str]]:
    """The services' cores and the API in this process, in a namespace of their own."""
    from aiohttp import web

    from tidydesk.common.runtime import consume
    from tidydesk.common.settings import Settings
    from tidydesk.common.store import JetStreamEventStore, RawStore, connect
    from tidydesk.common.topology import apply_topology
    from tidydesk.policy.app import PolicyService
    from tidydesk.queue.api import build as api_app
    from tidydesk.queue.app import forever
    from tidydesk.queue.auth import TokenStore
    from tidydesk.queue.projection import Projector
    from tidydesk.threading.app import build as threader
    from tidydesk.tickets.tokens import shared_secret

    ns = new_namespace()
    settings = Settings.from_env({"TIDYDESK_NAMESPACE": ns, "TIDYDESK_TRUSTED_AUTHSERV": RELAY})
    nc = await connect(nats_url, "bench-forged")
    js = nc.jetstream()
    pool = None
    tasks: list[asyncio.Task[object]] = []
    runner = None
    try:
        await apply_topology(js, ns)
        pool = await db.connect(database_url, ns, attempts=3)
        await db.migrate(pool)
        store, index = JetStreamEventStore(js, ns), KvIndex(js, ns)
        intake = Intake(store, RawStore(js, ns), trusted_authserv=settings.trusted_authserv)
        threading = await threader(settings, js)
        tasks = [
            asyncio.create_task(consume(js, ns, "threading", threading.handle)),
            asyncio.create_task(consume(js, ns, "policy", PolicyService(js, settings).handle)),
            asyncio.create_task(forever("projection", Projector(js, pool, ns).run)),
        ]
        app = api_app(pool, store, intake.raw, intake, 1 << 20, await shared_secret(index),
                      index)
        runner = web.AppRunner(app)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        token, _ = await TokenStore(js, ns).create(("admin",), name="bench-forged")
        yield intake, pool, f"http://127.0.0.1:{port}", token
    finally:
        if runner is not None:
            await runner.cleanup()
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=15) if tasks else None
        if pool is not None:
            await pool.execute(f'DROP SCHEMA "{ns}" CASCADE')
            await pool.close()
        await drop_namespace(js, ns)
        await nc.close()


async def main() -> None:
    quiet_logs()
    with servers(postgres=True) as s:
        async with desk(s.nats_url, s.database_url) as (intake, pool, api, token):
            rows = await run(intake, pool, api, token)
    print(f"forged senders, {machine()}; {'; '.join(s.notes)}\n")
    print_table(rows)
    bad = [r for r in rows if r.into_strangers_ticket]
    print(f"\n{len(bad)} of {len(rows) - 1} forged attempts threaded into a stranger's ticket")


if __name__ == "__main__":
    asyncio.run(main())
