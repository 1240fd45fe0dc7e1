"""Signed webhooks: one durable consumer per endpoint, so a down endpoint delays only itself."""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import structlog
from nats.js import JetStreamContext, api
from yarl import URL

from services.common import parking
from services.common.events import Envelope, encode

log = structlog.get_logger()
RETRYABLE_4XX = frozenset({408, 429})


class Rejected(parking.Permanent):
    """The endpoint refused the event (4xx): retrying the same bytes cannot help."""


def signature(secret: str, body: bytes) -> str:
    """Value of X-Tidydesk-Signature: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def durable_for(url: str) -> str:
    """The consumer name of an endpoint: stable per URL, free of its credentials."""
    return "webhook-" + hashlib.sha256(url.encode()).hexdigest()[:12]


async def ensure_consumer(js: JetStreamContext, ns: str, url: str, budget: api.ConsumerConfig
                          ) -> str:
    """Create (or update) the endpoint's consumer with the retry budget of `budget`."""
    durable = durable_for(url)
    await js.add_consumer(f"{ns.upper()}_EVENTS", api.ConsumerConfig(
        durable_name=durable,
        description=f"webhooks to {URL(url).with_user(None).with_query(None)}",
        filter_subject=f"{ns}.tickets.*",
        # NEW, not ALL: the stream keeps every event forever, and replaying years of history
        # into an endpoint the moment it is configured would flood it (and hold it for hours).
        # Integrators backfill through the API. Once created, the durable keeps its place, so
        # an endpoint that is down or removed and re-added later misses nothing after that.
        deliver_policy=api.DeliverPolicy.NEW,
        ack_policy=api.AckPolicy.EXPLICIT,
        max_deliver=budget.max_deliver,
        backoff=budget.backoff,
        max_ack_pending=budget.max_ack_pending,
    ))
    return durable


class Webhook:
    """At-least-once delivery to one URL; receivers dedupe on the CloudEvent `id` (ce-id)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, secret: str) -> None:
        self.http, self.url, self.secret = http, url, secret

    async def handle(self, seq: int, env: Envelope) -> None:
        body = encode(env)
        headers = {"Content-Type": "application/cloudevents+json", "ce-id": env.id,
                   "ce-type": env.type}
        if self.secret:
            headers["X-Tidydesk-Signature"] = signature(self.secret, body)
        async with self.http.post(self.url, data=body, headers=headers) as resp:
            if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                raise Rejected(f"webhook {durable_for(self.url)} answered {resp.status}")
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"webhook {durable_for(self.url)} answered {resp.status}")
        log.info("webhook_delivered", consumer=durable_for(self.url), type=env.type,
                 ticket_id=env.subject)
