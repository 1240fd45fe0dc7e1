"""The notify service: ticket events delivered to integrators as signed webhooks."""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import structlog

from services.common.events import Envelope, encode
from services.common.runtime import consume, open_bus
from services.common.settings import Settings
from services.common.store import close

log = structlog.get_logger()


def signature(secret: str, body: bytes) -> str:
    """Value of X-Tidydesk-Signature: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhooks:
    """At-least-once delivery; receivers dedupe on the CloudEvent `id` (also in ce-id)."""

    def __init__(self, http: aiohttp.ClientSession, urls: tuple[str, ...], secret: str) -> None:
        self.http, self.urls, self.secret = http, urls, secret

    async def handle(self, seq: int, env: Envelope) -> None:
        body = encode(env)
        headers = {"Content-Type": "application/cloudevents+json", "ce-id": env.id,
                   "ce-type": env.type}
        if self.secret:
            headers["X-Tidydesk-Signature"] = signature(self.secret, body)
        for url in self.urls:  # a failure retries the event for every URL (dedupe on ce-id)
            async with self.http.post(url, data=body, headers=headers) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"webhook {url} answered {resp.status}")
            log.info("webhook_delivered", url=url, type=env.type, ticket_id=env.subject)


async def run(settings: Settings) -> None:
    nc, js = await open_bus(settings, "tidydesk-notify")
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        hooks = Webhooks(http, settings.webhook_urls, settings.webhook_secret)
        if not settings.webhook_urls:
            log.info("no_webhooks_configured", hint="set TIDYDESK_WEBHOOK_URLS")
        try:
            await consume(js, settings.namespace, "notify", hooks.handle)
        finally:
            await close(nc)  # unacked work is redelivered to the next instance

