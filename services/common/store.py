"""The JetStream event store: per-ticket subjects, optimistic concurrency, idempotent publish."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import (
    APIError,
    BadRequestError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from services.common.events import Envelope, Event, decode, encode, envelope, type_of
from services.common.ticket import Ticket, fold

log = structlog.get_logger()
TOPOLOGY = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "jetstream.json"
WRONG_LAST_SEQUENCE = 10071  # JSStreamWrongLastSequenceErrF


class Conflict(Exception):
    """Another writer appended to the ticket first; reload and decide again."""


def digest_key(text: str) -> str:
    """A subject/KV-safe key for arbitrary text such as a Message-ID."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


async def connect(url: str, name: str) -> Client:
    """Connect, retrying at start and reconnecting forever afterwards."""
    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc) or type(exc).__name__)

    async def on_disconnect() -> None:
        log.warning("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")

    attempt = 0
    while True:
        try:
            return await nats.connect(
                url,
                name=name,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                connect_timeout=3,
                allow_reconnect=True,
            )
        except Exception as exc:  # nats raises several unrelated types for "not there"
            attempt += 1
            log.warning("nats_unavailable", url=url, error=str(exc) or type(exc).__name__,
                        attempt=attempt)
            await asyncio.sleep(min(5.0, 0.5 * attempt))


def fill_namespace(value: Any, ns: str) -> Any:
    """Put the namespace into a deploy/nats value: {ns} as is, {NS} upper-cased."""
    if isinstance(value, str):
        return value.replace("{ns}", ns).replace("{NS}", ns.upper())
    if isinstance(value, list):
        return [fill_namespace(v, ns) for v in value]
    return value


async def apply_topology(js: JetStreamContext, ns: str, path: Path = TOPOLOGY) -> None:
    """Create or update the streams, consumers and buckets defined in deploy/nats."""
    spec = json.loads(path.read_text())  # noqa: ASYNC240 - one small local file at start
    for raw in spec["streams"]:
        cfg = api.StreamConfig.from_response({k: fill_namespace(v, ns) for k, v in raw.items()})
        try:
            await js.add_stream(cfg)
        except BadRequestError:
            await js.update_stream(cfg)
    for raw in spec["consumers"]:
        fields = {k: fill_namespace(v, ns) for k, v in raw.items() if k != "stream"}
        stream = fill_namespace(raw["stream"], ns)
        await js.add_consumer(stream, api.ConsumerConfig.from_response(fields))
    for raw in spec["key_value"]:
        fields = {k: fill_namespace(v, ns) for k, v in raw.items()}
        await js.create_key_value(api.KeyValueConfig(**fields))
    for raw in spec["object_stores"]:
        fields = {k: fill_namespace(v, ns) for k, v in raw.items()}
        await js.create_object_store(fields["bucket"], api.ObjectStoreConfig(**fields))


def topology_streams(ns: str, path: Path = TOPOLOGY) -> list[str]:
    """Names of every stream the topology creates (buckets included)."""
    spec = json.loads(path.read_text())
    return ([fill_namespace(s["name"], ns) for s in spec["streams"]]
            + [f"KV_{fill_namespace(b['bucket'], ns)}" for b in spec["key_value"]]
            + [f"OBJ_{fill_namespace(b['bucket'], ns)}" for b in spec["object_stores"]])


class EventStore(Protocol):
    """Port: where ticket events are recorded and read back."""

    async def load(self, ticket_id: str) -> Ticket: ...
    async def append(self, ticket_id: str, items: Sequence[tuple[Event, str]], expected: int
                     ) -> int: ...
    async def decide(self, ticket_id: str,
                     decider: Callable[[Ticket], Sequence[tuple[Event, str]]]) -> list[Event]: ...


class Decides:
    """The command-handler loop shared by every EventStore adapter."""

    async def load(self, ticket_id: str) -> Ticket:
        raise NotImplementedError

    async def append(self, ticket_id: str, items: Sequence[tuple[Event, str]], expected: int
                     ) -> int:
        raise NotImplementedError

    async def decide(
        self, ticket_id: str, decider: Callable[[Ticket], Sequence[tuple[Event, str]]],
        attempts: int = 50,
    ) -> list[Event]:
        """Load, decide, append; on a conflict decide again against fresh state."""
        for _ in range(attempts):
            ticket = await self.load(ticket_id)
            items = decider(ticket)
            if not items:
                return []
            try:
                await self.append(ticket_id, items, ticket.version)
            except Conflict:
                log.info("append_conflict_retry", ticket_id=ticket_id)
                continue
            return [e for e, _ in items]
        raise Conflict(f"{ticket_id}: gave up after {attempts} conflicting attempts")


class JetStreamEventStore(Decides):
    """EventStore on one JetStream stream; see deploy/nats/jetstream.json."""

    def __init__(self, js: JetStreamContext, ns: str) -> None:
        self.js, self.ns, self.stream = js, ns, f"{ns.upper()}_EVENTS"

    def ticket_subject(self, ticket_id: str) -> str:
        return f"{self.ns}.tickets.{ticket_id}"

    async def record_intake(self, event: Event, digest: str) -> bool:
        """Publish an intake event once per digest, forever; False if it was already there."""
        env = envelope(event, subject=digest, key=digest)
        headers = {
            "Nats-Msg-Id": env.id,
            "Nats-Expected-Last-Subject-Sequence": "0",
            "ce-type": env.type,
        }
        try:
            ack = await self.js.publish(
                f"{self.ns}.inbound.{digest}", encode(env), headers=headers
            )
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return False
            raise
        return not ack.duplicate

    async def history(self, subject: str) -> list[tuple[int, Envelope]]:
        """Every event on one subject, in order (direct gets by subject, no consumer)."""
        out: list[tuple[int, Envelope]] = []
        seq = 1
        while True:
            try:
                msg = await self.js.get_msg(self.stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return out
            assert msg.seq is not None and msg.data is not None
            out.append((msg.seq, decode(msg.data)))
            seq = msg.seq + 1

    async def load(self, ticket_id: str) -> Ticket:
        return fold(ticket_id, await self.history(self.ticket_subject(ticket_id)))

    async def append(
        self, ticket_id: str, items: Sequence[tuple[Event, str]], expected: int
    ) -> int:
        """Append (event, idempotency key) pairs if the ticket is still at `expected`."""
        subject = self.ticket_subject(ticket_id)
        for event, key in items:
            env = envelope(event, subject=ticket_id, key=key)
            headers = {
                "Nats-Msg-Id": env.id,
                "Nats-Expected-Last-Subject-Sequence": str(expected),
                "Nats-Expected-Last-Subject-Sequence-Subject": subject,
                "ce-type": env.type,
            }
            try:
                ack = await self.js.publish(subject, encode(env), headers=headers)
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                # The server checks the expected sequence before Msg-Id dedupe, so a retry of
                # a publish that did land looks like a conflict: recognise our own event.
                last = await self.js.get_msg(self.stream, subject=subject)
                if not last.data or decode(last.data).id != env.id:
                    raise Conflict(ticket_id) from exc
                assert last.seq is not None
                expected = last.seq
                continue
            log.debug("event_appended", ticket_id=ticket_id, event_id=env.id,
                      type=type_of(event), seq=ack.seq, duplicate=ack.duplicate)
            expected = ack.seq
        return expected


def tenant(mailbox: str) -> str:
    """Tenant of a mailbox: its domain (plus-addressing and case ignored)."""
    return mailbox.rpartition("@")[2].lower()


def link(ticket_id: str, mailbox: str) -> str:
    """Index value naming a ticket and its tenant, checkable before the ticket exists."""
    return f"{ticket_id}|{tenant(mailbox)}"


def unlink(value: str) -> tuple[str, str]:
    """(ticket id, tenant) of an index value written by `link`."""
    ticket_id, _, owner = value.partition("|")
    return ticket_id, owner


class Index(Protocol):
    """Port: small shared lookups (Message-ID -> ticket, number -> ticket, …) with claims."""

    async def get(self, key: str) -> str | None: ...
    async def put(self, key: str, value: str) -> None: ...
    async def claim(self, key: str, value: str) -> str: ...
    async def update(self, key: str, change: Callable[[str | None], str]) -> str: ...
    async def next_number(self, ticket_id: str) -> int: ...


class KvIndex:
    """Index in JetStream key-value buckets; `claim` is an atomic create."""

    def __init__(self, js: JetStreamContext, ns: str) -> None:
        self.js, self.ns, self.bucket = js, ns, f"{ns}_msgindex"
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:  # one lookup round trip per process, not per operation
            self._kv = await self.js.key_value(self.bucket)
        return self._kv

    async def get(self, key: str) -> str | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(digest_key(key))
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def put(self, key: str, value: str) -> None:
        kv = await self._bucket()
        await kv.put(digest_key(key), value.encode())

    async def claim(self, key: str, value: str) -> str:
        """Store `value` unless the key is taken; return whatever the key holds now."""
        kv = await self._bucket()
        try:
            await kv.create(digest_key(key), value.encode())
            return value
        except KeyWrongLastSequenceError:
            return await self.get(key) or value

    async def update(self, key: str, change: Callable[[str | None], str]) -> str:
        """Read-modify-write that loses no concurrent update: write only at the read revision."""
        kv = await self._bucket()
        name = digest_key(key)
        while True:
            try:
                entry = await kv.get(name)
            except KeyNotFoundError:
                value = change(None)
                try:
                    await kv.create(name, value.encode())
                    return value
                except KeyWrongLastSequenceError:
                    continue  # someone created it first: change their value instead
            value = change(entry.value.decode() if entry.value else None)
            try:
                await kv.update(name, value.encode(), last=entry.revision)
                return value
            except KeyWrongLastSequenceError:
                log.debug("kv_update_conflict_retry", key=key)

    async def next_number(self, ticket_id: str) -> int:
        """A short, unique number: the revision of a put to the counters bucket."""
        kv = await self.js.key_value(f"{self.ns}_counters")
        return int(await kv.put("ticket", ticket_id.encode()))



class RawStore:
    """Raw RFC 5322 bytes by sha256, in the JetStream object store."""

    def __init__(self, js: JetStreamContext, ns: str) -> None:
        self.js, self.bucket = js, f"{ns}_raw"
        self._obs: ObjectStore | None = None

    async def _store(self) -> ObjectStore:
        if self._obs is None:
            self._obs = await self.js.object_store(self.bucket)
        return self._obs

    async def put(self, raw: bytes) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        obs = await self._store()
        try:
            await obs.get_info(digest)
        except NotFoundError:
            await obs.put(digest, raw)
        return digest

    async def get(self, digest: str) -> bytes | None:
        obs = await self._store()
        try:
            result = await obs.get(digest)
        except NotFoundError:
            return None
        return result.data


async def close(nc: Client) -> None:
    """Close a connection that may already be dead (nats-py raises on a lost socket)."""
    with contextlib.suppress(OSError):
        await nc.close()
