"""The notify service: agent replies mailed out, ticket events as signed webhooks.

Each concern has its own durable consumer, run as concurrent tasks: `notify-mail` (in the
topology) and one `webhook-<digest of URL>` per endpoint, created here with the mail
consumer's retry budget. A down endpoint retries and parks its own events only. Both start at
new events (deploy/nats, webhooks.py): replaying the whole stream would re-mail every reply
ever sent. The consumer `notify` of earlier versions is no longer read; operators may delete it.
"""

from __future__ import annotations

import asyncio

import aiohttp
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.common import health
from services.common.runtime import consume, open_bus
from services.common.settings import Settings
from services.common.store import close
from services.notify.mail import Mailer
from services.notify.webhooks import Webhook, ensure_consumer

log = structlog.get_logger()
MAIL = "notify-mail"


async def serve(nc: Client, js: JetStreamContext, settings: Settings,
                http: aiohttp.ClientSession) -> None:
    """Create the webhook consumers, then run mail and every endpoint until cancelled."""
    ns = settings.namespace
    budget = (await js.consumer_info(f"{ns.upper()}_EVENTS", MAIL)).config
    hooks = {await ensure_consumer(js, ns, url, budget): Webhook(http, url, settings.webhook_secret)
             for url in settings.webhook_urls}
    if not hooks:
        log.info("no_webhooks_configured", hint="set TIDYDESK_WEBHOOK_URLS")
    mailer = Mailer(nc, ns, settings.smtp_relay)
    await mailer.start()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(consume(js, ns, MAIL, mailer.handle))
        for durable, hook in hooks.items():
            log.info("webhook_consumer", consumer=durable)
            tasks.create_task(consume(js, ns, durable, hook.handle))


async def run(settings: Settings) -> None:
    nc, js = await open_bus(settings, "tidydesk-notify")
    health.register("consumer", health.consumer(js, settings.namespace, MAIL))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await serve(nc, js, settings, http)
    finally:
        await close(nc)  # unacked work is redelivered to the next instance
