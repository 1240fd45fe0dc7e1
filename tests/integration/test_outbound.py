"""Agent replies go out by SMTP with threading headers; customers' answers come back in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.common.runtime import consume
from services.notify.app import Notifier, Webhooks, signature
from tests.conftest import Stack, eventually, free_port, mail


class Sink:
    """A real SMTP server on loopback that keeps what it is given (the relay)."""

    def __init__(self) -> None:
        self.mails: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails.append(envelope.original_content or b"")
        return "250 OK"


@pytest.fixture
async def notify(stack: Stack) -> AsyncIterator[tuple[Sink, list[tuple[bytes, str]]]]:
    sink, hooks_seen = Sink(), []
    smtp_port, hook_port = free_port(), free_port()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink), "127.0.0.1", smtp_port)

    async def receive(request: web.Request) -> web.Response:
        hooks_seen.append((await request.read(), request.headers["X-Tidydesk-Signature"]))
        return web.Response(status=204)

    app = web.Application()
    app.add_routes([web.post("/hook", receive)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    async with aiohttp.ClientSession() as http:
        notifier = Notifier(Webhooks(http, (f"http://127.0.0.1:{hook_port}/hook",), "s3cret"),
                            f"127.0.0.1:{smtp_port}")
        task = asyncio.create_task(consume(stack.js, stack.ns, "notify", notifier.handle))
        yield sink, hooks_seen
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await runner.cleanup()
    server.close()


async def test_reply_is_mailed_and_answers_thread_back(
        stack: Stack, api: str, notify: tuple[Sink, list[tuple[bytes, str]]]) -> None:
    sink, hooks = notify
    await stack.intake.accept(mail("o1@example.com", "My order never arrived."))
    (row,) = await eventually(stack.tickets)
    async with aiohttp.ClientSession() as http:
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
    payload, sig = hooks[0]
    assert sig == signature("s3cret", payload)
    assert json.loads(payload)["specversion"] == "1.0"


async def _ready(items: list[Any]) -> bool:
    return bool(items)


async def _count(stack: Stack) -> int:
    return int(await stack.pool.fetchval("SELECT count(*) FROM messages"))
