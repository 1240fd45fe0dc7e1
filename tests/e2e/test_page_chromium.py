"""The page at `/` in a real headless Chromium (Debian's `chromium`, driven by Playwright):
mail in over SMTP, solved by an agent, a thank-you the policy acknowledges; sign in with
`?token=`, see the queue, open the ticket, see the acknowledgement in the timeline."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from nats.aio.client import Client

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.runtime import consume
from tidydesk.common.store import KvIndex
from tidydesk.desk.app import DURABLE, DeskService
from tidydesk.ingest.smtp import serve
from tidydesk.queue.api import build, runner
from tidydesk.queue.auth import TokenStore
from tidydesk.tickets.tokens import shared_secret

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.async_api", reason="pip install playwright")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)")


@pytest.fixture
async def desk(nc: Client, pool: asyncpg.Pool, ns: str) -> AsyncIterator[Stack]:
    """The stack with the content-aware policy and the desk engine (kudos)."""
    s = Stack(nc, pool, ns, policy="content-aware")
    tasks = await s.tasks()
    tasks.append(asyncio.create_task(consume(s.js, s.ns, DURABLE,
                                             DeskService(s.js, s.settings).handle)))
    yield s
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=15)


@pytest.fixture
async def url(desk: Stack) -> AsyncIterator[str]:
    index = KvIndex(desk.js, desk.ns)
    port = free_port()
    app = build(desk.pool, desk.store, desk.intake.raw, desk.intake, 1 << 20,
                await shared_secret(index), index, hosts=frozenset({f"127.0.0.1:{port}"}))
    server = runner(app)
    await server.setup()
    await web.TCPSite(server, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await server.cleanup()


async def test_queue_timeline_and_acknowledged_thanks_in_chromium(
        desk: Stack, url: str, tmp_path: Path) -> None:
    port = free_port()
    smtp = await serve(desk.intake, "127.0.0.1", port, max_bytes=1 << 20)

    def send(raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("alice@example.com", ["support@acme.example"], raw)

    try:
        await asyncio.to_thread(send, mail("p1@example.com", "The printer is jammed again."))

        async def ticket() -> str | None:
            value = await desk.pool.fetchval(
                "SELECT ticket_id FROM messages WHERE message_id = 'p1@example.com'")
            return str(value) if value else None

        tid = await eventually(ticket)
        secret, _ = await TokenStore(desk.js, desk.ns).create(("read", "write"), name="page")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as http:
            for path, body in (("reply", {"text": "Open the tray and pull the sheet out.",
                                          "agent": "kim"}),
                               ("tags", {"tag": "hardware", "agent": "kim"}),
                               ("solve", {"agent": "kim"})):
                async with http.post(f"{url}/tickets/{tid}/{path}", json=body) as r:
                    assert r.status == 202, await r.text()
        await asyncio.to_thread(send, mail("p2@example.com", "Thank you so much!",
                                           in_reply_to="p1@example.com"))

        async def thanked() -> bool:  # acknowledged by policy, kudos by the desk engine
            return bool(await desk.pool.fetchval(
                "SELECT 1 FROM events WHERE ticket_id = $1 AND type ="
                " 'tidydesk.agent.thanked'", tid))

        await eventually(thanked)
    finally:
        smtp.close()

    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)
            await page.goto(f"{url}/?token={secret}")
            assert page.url == f"{url}/"  # the token left the address bar
            (cookie,) = await context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            await page.wait_for_selector("body[data-ready='1']")
            assert await page.is_hidden("#signin")

            await page.select_option("#filters select[name=status]", "solved")
            await page.fill("#filters input[name=tag]", "hardware")
            await page.click("#filters button")
            row = page.locator(f"#queue tbody tr[data-id='{tid}']")
            await row.wait_for()
            assert "Printer broken" in await row.inner_text()
            await row.click()
            ack = page.locator("#timeline li.ev-followup-acknowledged")
            await ack.wait_for()
            text = await ack.inner_text()
            assert "Acknowledged" in text and "confidence" in text and "credit to kim" in text
            assert await ack.locator(".reasons li").count() >= 1
            assert await page.locator("#timeline li.ev-reply-sent").count() == 1
            assert "Thank you so much!" in await page.inner_text("#timeline")
            assert "alice@example.com: 1 ticket(s)" in await page.inner_text("#customer")

            await page.wait_for_selector("#per-day svg rect", state="attached")
            bars = await page.locator("#per-day svg rect:not([height='0'])").count()
            assert bars == 2  # today: one opened, one solved
            assert await page.inner_text("#totals .tile[data-name=acknowledged] b") == "1"
            assert await page.inner_text("#kudos") == "kim: 1"
            assert await page.locator("#timeline li.ev-agent-thanked").count() == 1
            await page.wait_for_selector("#tail li")
            shot = tmp_path / "page.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
            if target := os.environ.get("TIDYDESK_PAGE_SCREENSHOT"):  # docs/page.png
                shutil.copyfile(shot, target)
            assert errors == []
        finally:
            await browser.close()
