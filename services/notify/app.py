"""The notify service: agent replies mailed out, ticket events as signed webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

import aiohttp
import structlog

from services.common.events import Envelope, ReplySent, encode
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


def outbound_mail(e: ReplySent) -> EmailMessage:
    """The agent's reply as a mail that threads back: Message-ID indexed, token Reply-To."""
    mail = EmailMessage()
    mail["From"] = e.sender
    mail["To"] = e.to
    mail["Reply-To"] = e.reply_to
    mail["Subject"] = e.subject
    mail["Message-ID"] = f"<{e.message_id}>"
    mail["Date"] = formatdate(localtime=False)
    if e.in_reply_to:
        mail["In-Reply-To"] = f"<{e.in_reply_to}>"
    if e.references:
        mail["References"] = " ".join(f"<{r}>" for r in e.references)
    mail.set_content(e.text)
    return mail


class Notifier:
    """Mails reply.sent through the relay (at least once: receivers dedupe on Message-ID),
    then hands every event to the webhooks."""

    def __init__(self, hooks: Webhooks, relay: str) -> None:
        self.hooks, self.relay = hooks, relay

    def _send(self, mail: EmailMessage) -> None:
        host, _, port = self.relay.rpartition(":")
        with smtplib.SMTP(host or "127.0.0.1", int(port), timeout=30) as smtp:
            smtp.send_message(mail)

    async def handle(self, seq: int, env: Envelope) -> None:
        if isinstance(env.data, ReplySent):
            if self.relay:
                await asyncio.to_thread(self._send, outbound_mail(env.data))
                log.info("reply_mailed", ticket_id=env.data.ticket_id, to=env.data.to,
                         message_id=env.data.message_id)
            else:
                log.warning("reply_not_mailed", ticket_id=env.data.ticket_id,
                            hint="set TIDYDESK_SMTP_RELAY")
        await self.hooks.handle(seq, env)


async def run(settings: Settings) -> None:
    nc, js = await open_bus(settings, "tidydesk-notify")
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        notifier = Notifier(Webhooks(http, settings.webhook_urls, settings.webhook_secret),
                            settings.smtp_relay)
        if not settings.webhook_urls:
            log.info("no_webhooks_configured", hint="set TIDYDESK_WEBHOOK_URLS")
        try:
            await consume(js, settings.namespace, "notify", notifier.handle)
        finally:
            await close(nc)  # unacked work is redelivered to the next instance

