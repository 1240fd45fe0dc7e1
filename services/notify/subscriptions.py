"""Webhook subscriptions: one record per endpoint in the `{ns}_webhooks` KV bucket.

A record holds the URL, its `whsec_` secret and its filters. `tidydesk webhooks` writes them;
notify watches the bucket and starts or stops the endpoint's consumer as they change.
TIDYDESK_WEBHOOK_URLS still works: each URL is a static subscription to every event.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue
from yarl import URL

from tidydesk.common.events import EVENT_TYPES
from tidydesk.common.settings import Settings
from tidydesk.common.topology import TOPOLOGY, fill_namespace

INTAKE = frozenset({"message.received", "message.rejected"})  # not on {ns}.tickets.*
TICKET_TYPES = frozenset(
    f"tidydesk.{msgspec.inspect.type_info(cls).tag}"  # type: ignore[attr-defined]
    for cls in EVENT_TYPES) - {f"tidydesk.{t}" for t in INTAKE}


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """One endpoint: where ticket events go, signed with `secret`, filtered by type/mailbox."""

    id: str
    url: str
    secret: str  # whsec_<base64 key>; "" = unsigned (a static URL without a secret)
    created: datetime
    events: tuple[str, ...] = ()  # CloudEvent types; empty = every type
    mailboxes: tuple[str, ...] = ()  # normalised addresses; empty = every mailbox
    static: bool = False  # from TIDYDESK_WEBHOOK_URLS, not from the bucket

    @property
    def durable(self) -> str:
        """The endpoint's JetStream consumer."""
        return f"webhook-{self.id}"

    @property
    def safe_url(self) -> str:
        """The URL without user, password or query (where tokens hide)."""
        return str(URL(self.url).with_user(None).with_query(None).with_fragment(None))

    def wants_type(self, event_type: str) -> bool:
        return not self.events or event_type in self.events

    def wants_mailbox(self, mailbox: str) -> bool:
        return not self.mailboxes or normal_mailbox(mailbox) in self.mailboxes


def normal_mailbox(address: str) -> str:
    """Compare mailboxes as intake does: case and plus-addressing ignored."""
    local, _, domain = address.strip().lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}" if local else domain


def event_types(spec: str) -> tuple[str, ...]:
    """`ticket.opened,tidydesk.ticket.solved` -> full CloudEvent types; ValueError if unknown."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        full = item if item.startswith("tidydesk.") else f"tidydesk.{item}"
        if full not in TICKET_TYPES:
            raise ValueError(f"unknown event type {item!r}; one of: "
                             + ", ".join(sorted(TICKET_TYPES)))
        out.append(full)
    return tuple(dict.fromkeys(out))


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def as_whsec(secret: str) -> str:
    """TIDYDESK_WEBHOOK_SECRET in whsec_ form: kept if it is one, else its bytes are the key."""
    if not secret or secret.startswith("whsec_"):
        return secret
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def check_url(url: str) -> str:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


def static(settings: Settings) -> list[Subscription]:
    """TIDYDESK_WEBHOOK_URLS as subscriptions to every event; ids (and consumers) are the
    digest of the URL, as before subscriptions existed, so their consumers keep their place."""
    epoch = datetime.fromtimestamp(0, UTC)
    return [Subscription(id=hashlib.sha256(url.encode()).hexdigest()[:12], url=url,
                         secret=as_whsec(settings.webhook_secret), created=epoch, static=True)
            for url in settings.webhook_urls]


def bucket_name(ns: str) -> str:
    return f"{ns}_webhooks"


async def bucket(js: JetStreamContext, ns: str) -> KeyValue:
    """The subscriptions bucket, created as jetstream.json says if the stack never started."""
    try:
        return await js.key_value(bucket_name(ns))
    except BucketNotFoundError:
        spec = json.loads(TOPOLOGY.read_text())
        (raw,) = [b for b in spec["key_value"] if b["bucket"] == "{ns}_webhooks"]
        return await js.create_key_value(api.KeyValueConfig(
            **{k: fill_namespace(v, ns) for k, v in raw.items()}))


def decode(value: bytes | None) -> Subscription:
    return msgspec.json.decode(value or b"", type=Subscription)


async def stored(kv: KeyValue) -> list[Subscription]:
    """Every subscription in the bucket, oldest first."""
    watcher = await kv.watchall(ignore_deletes=True)
    out: list[Subscription] = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            out.append(decode(entry.value))
            if entry.delta == 0:
                break
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return sorted(out, key=lambda s: s.created)


async def get(kv: KeyValue, sub_id: str) -> Subscription | None:
    try:
        entry = await kv.get(sub_id)
    except KeyNotFoundError:  # also raised for a deleted key
        return None
    return decode(entry.value) if entry.value else None


async def add(kv: KeyValue, url: str, events: tuple[str, ...] = (),
              mailboxes: tuple[str, ...] = ()) -> Subscription:
    """Store a new subscription with a fresh secret."""
    sub = Subscription(id=secrets.token_hex(6), url=check_url(url), secret=new_secret(),
                       created=datetime.now(UTC), events=events,
                       mailboxes=tuple(dict.fromkeys(normal_mailbox(m) for m in mailboxes)))
    await kv.create(sub.id, msgspec.json.encode(sub))
    return sub
