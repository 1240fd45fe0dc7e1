"""The notify service: agent replies mailed out, ticket events as Standard Webhooks.

Each concern has its own durable consumer, run as concurrent tasks: `notify-mail` (in the
topology) and one `webhook-<subscription id>` per endpoint, created with the mail consumer's
retry budget. A down endpoint retries and parks its own events only. Subscriptions come from
the `{ns}_webhooks` bucket (`tidydesk webhooks`), watched while running, and from
TIDYDESK_WEBHOOK_URLS. Both mail and webhooks start at new events (jetstream.json,
webhooks.py): replaying the whole stream would re-mail every reply ever sent.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.kv import KV_DEL, KV_PURGE

from tidydesk.common.runtime import consume, open_bus
from tidydesk.common.settings import Settings
from tidydesk.common.store import close
from tidydesk.notify import subscriptions
from tidydesk.notify.mail import Mailer
from tidydesk.notify.subscriptions import Subscription
from tidydesk.notify.webhooks import (
    BATCH,
    Mailboxes,
    Webhook,
    delete_consumers,
    ensure_consumer,
)

log = structlog.get_logger()
MAIL = "notify-mail"
RESTART_DELAY = 2.0  # s before an endpoint's consumer loop that failed runs again


class Endpoints:
    """The running endpoint consumers, one task per subscription, started and stopped as the
    subscriptions bucket changes."""

    def __init__(self, js: JetStreamContext, ns: str, http: aiohttp.ClientSession,
                 budget: api.ConsumerConfig, tasks: asyncio.TaskGroup) -> None:
        self.js, self.ns, self.http, self.budget, self.tasks = js, ns, http, budget, tasks
        self.mailboxes = Mailboxes(js, ns)
        self.running: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}

    async def start(self, sub: Subscription) -> None:
        """Run the subscription's consumer (again, if the record changed)."""
        current = self.running.get(sub.id)
        if current is not None and current[0] == sub:
            return
        await self.stop(sub.id)
        self.running[sub.id] = (sub, self.tasks.create_task(self._run(sub)))

    async def stop(self, sub_id: str, delete: bool = False) -> None:
        """Stop the subscription's task; `delete` also drops its consumers (it was removed)."""
        sub, task = self.running.pop(sub_id, (None, None))
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=10)
        if delete and sub is not None:
            await delete_consumers(self.js, self.ns, sub.durable)
            log.info("webhook_removed", consumer=sub.durable, url=sub.safe_url)

    async def _run(self, sub: Subscription) -> None:
        """Consume for one endpoint until cancelled; a failing loop (NATS away, the consumer
        replaced by `webhooks redeliver`) starts over, without touching other endpoints."""
        hook = Webhook(self.http, sub, self.ns, self.mailboxes)
        while True:
            try:
                await ensure_consumer(self.js, self.ns, sub, self.budget)
                log.info("webhook_consumer", consumer=sub.durable, url=sub.safe_url,
                         events=sub.events or "all", mailboxes=sub.mailboxes or "all")
                await consume(self.js, self.ns, sub.durable, hook.handle, batch=BATCH)
            except Exception:
                log.exception("webhook_consumer_failed", consumer=sub.durable)
            await asyncio.sleep(RESTART_DELAY)

    async def watch(self) -> None:
        """Follow the subscriptions bucket: current records first, then every change."""
        kv = await subscriptions.bucket(self.js, self.ns)
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    log.info("webhooks_loaded", endpoints=len(self.running))
                elif entry.operation in (KV_DEL, KV_PURGE):
                    await self.stop(entry.key, delete=True)
                else:
                    try:
                        sub = subscriptions.decode(entry.value)
                    except ValueError:
                        log.exception("webhook_record_unreadable", key=entry.key)
                        continue
                    await self.start(sub)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        for sub_id in list(self.running):
            await self.stop(sub_id)


async def serve(nc: Client, js: JetStreamContext, settings: Settings,
                http: aiohttp.ClientSession) -> None:
    """Run mail and every endpoint (static ones and the bucket's) until cancelled."""
    ns = settings.namespace
    budget = (await js.consumer_info(f"{ns.upper()}_EVENTS", MAIL)).config
    mailer = Mailer(nc, ns, settings.smtp_relay)
    await mailer.start()
    async with asyncio.TaskGroup() as tasks:
        endpoints = Endpoints(js, ns, http, budget, tasks)
        try:
            tasks.create_task(consume(js, ns, MAIL, mailer.handle,
                                      concurrency=settings.consumer_concurrency))
            for sub in subscriptions.static(settings):
                if not sub.secret:
                    log.warning("webhook_unsigned", url=sub.safe_url,
                                hint="set TIDYDESK_WEBHOOK_SECRET or use `tidydesk webhooks add`")
                await endpoints.start(sub)
            await endpoints.watch()
        finally:
            await endpoints.close()


async def run(settings: Settings) -> None:
    nc, js = await open_bus(settings, "tidydesk-notify")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await serve(nc, js, settings, http)
    finally:
        await close(nc)  # unacked work is redelivered to the next instance
