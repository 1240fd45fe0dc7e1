"""The JetStream event store: per-ticket subjects, optimistic concurrency, idempotent publish."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import (
    APIError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from tidydesk.common import trace
from tidydesk.common.events import Envelope, Event, decode, encode, envelope, source_for
from tidydesk.tickets.mailbox import tenant
from tidydesk.tickets.ticket import Ticket, fold

log = structlog.get_logger()
STRUCTURED = "application/cloudevents+json"  # the CloudEvents NATS binding, structured mode
WRONG_LAST_SEQUENCE = 10071  # JSStreamWrongLastSequenceErrF
SINGLE_GETS = 4  # a longer gap is read by one ephemeral consumer (see bench.e2e)
REPLAY_IDLE = 5.0  # s: the server drops an ephemeral replay consumer left behind
REPLAY_TIMEOUT = 5.0  # s to wait for the next event of a replay
RAW_INLINE_MAX = 1024 * 1024  # bytes: a raw mail up to this is one message on {NS}_RAW
RAW_HEADROOM = 4096  # bytes of the max payload left for headers


class Conflict(Exception):
    """Another writer appended to the ticket first; reload and decide again."""


def digest_key(text: str) -> str:
    """A subject/KV-safe key for arbitrary text such as a Message-ID."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def servers(url: str) -> list[str]:
    """TIDYDESK_NATS_URL as a server list: a cluster's nodes are comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


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
                servers(url),
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
        attempts: int = 50, first: Ticket | None = None,
    ) -> list[Event]:
        """Load, decide, append; on a conflict decide again against fresh state. `first`: a
        state already read, tried before any load (the append checks it is current)."""
        for _ in range(attempts):
            ticket, first = first or await self.load(ticket_id), None
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


class OneRead(Decides):
    """An EventStore that reads each ticket from `store` once per unit of work (`unit()`):
    one mail's threading loads its target three or four times (where the evidence points,
    where it continues, the write); between them only the expected-sequence append decides
    whether the state read is still current. An append, a conflict or `forget` drops the
    copy, so a retry reads afresh. Outside a unit it is `store` itself."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._read: contextvars.ContextVar[dict[str, Ticket] | None] = contextvars.ContextVar(
            "one_read", default=None)

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        token = self._read.set({})
        try:
            yield
        finally:
            self._read.reset(token)

    def assume(self, ticket: Ticket) -> None:
        """Take `ticket` as read in this unit (the caller knows its state; a wrong guess
        ends in a conflict at the append, which reads afresh)."""
        read = self._read.get()
        if read is not None:
            read[ticket.ticket_id] = ticket

    def forget(self, ticket_id: str) -> None:
        (self._read.get() or {}).pop(ticket_id, None)

    async def load(self, ticket_id: str) -> Ticket:
        read = self._read.get()
        if read is None:
            return await self.store.load(ticket_id)
        if ticket_id not in read:
            read[ticket_id] = await self.store.load(ticket_id)
        return read[ticket_id].copy()

    async def append(self, ticket_id: str, items: Sequence[tuple[Event, str]], expected: int
                     ) -> int:
        self.forget(ticket_id)
        return await self.store.append(ticket_id, items, expected)


class JetStreamEventStore(Decides):
    """EventStore on one JetStream stream; see services/common/jetstream.json.

    Folded tickets are kept in a per-process LRU cache with the stream sequence of their
    last event. A load still asks the server for the ticket's last event (one round trip)
    and reads only what came after the cached sequence, so another process's appends are
    always seen; writes stay guarded by the expected-sequence check of `append`.
    """

    def __init__(self, js: JetStreamContext, ns: str, cache_size: int = 10_000) -> None:
        self.js, self.ns, self.stream = js, ns, f"{ns.upper()}_EVENTS"
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Ticket, str]] = OrderedDict()  # -> (ticket, id)

    def ticket_subject(self, ticket_id: str) -> str:
        return f"{self.ns}.tickets.{ticket_id}"

    def intake_subject(self, key: str) -> str:
        return f"{self.ns}.inbound.{key}"

    async def record_intake(self, event: Event, key: str) -> bool:
        """Publish an intake event once per key, forever; False if the key was taken."""
        env = envelope(event, subject=key, key=key, source=source_for(self.ns))
        headers = {
            "Nats-Msg-Id": env.id,
            "Nats-Expected-Last-Subject-Sequence": "0",
            "ce-type": env.type,
            "Content-Type": STRUCTURED,
            **trace.nats_headers(env.traceparent),
        }
        try:
            ack = await self.js.publish(self.intake_subject(key), encode(env), headers=headers)
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return False
            raise
        return not ack.duplicate

    async def intake_event(self, key: str) -> Event | None:
        """The intake event recorded under `key`, None if there is none."""
        last = await self._last(self.intake_subject(key))
        return None if last is None or last.data is None else decode(last.data).data

    async def _last(self, subject: str) -> api.RawStreamMsg | None:
        """The subject's last message (from the stream leader), None if it has none."""
        try:
            return await self.js.get_msg(self.stream, subject=subject)
        except NotFoundError:
            return None

    async def history(self, subject: str) -> list[tuple[int, Envelope]]:
        """Every event on one subject, in order."""
        last = await self._last(subject)
        return [] if last is None else await self._after(subject, 0, last)

    async def _after(self, subject: str, after: int, last: api.RawStreamMsg
                     ) -> list[tuple[int, Envelope]]:
        """The subject's events after `after` up to `last`: a few gets of one message each
        (the usual gap is 0-2 events), then one ephemeral consumer for the rest."""
        assert last.seq is not None and last.data is not None
        out: list[tuple[int, Envelope]] = []
        seq = after + 1
        for _ in range(SINGLE_GETS):
            if seq > last.seq:
                return out
            msg = last if seq == last.seq else await self.js.get_msg(
                self.stream, seq=seq, subject=subject, next=True)
            assert msg.seq is not None and msg.data is not None
            out.append((msg.seq, decode(msg.data)))
            seq = msg.seq + 1
        if seq <= last.seq:
            out.extend(await self._replay(subject, seq, last.seq))
        return out

    async def _replay(self, subject: str, start: int, end: int) -> list[tuple[int, Envelope]]:
        """Events of `subject` from `start` to `end` pushed by one ephemeral consumer."""
        nc: Client = self.js._nc
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        out: list[tuple[int, Envelope]] = []
        name = ""
        try:
            info = await self.js.add_consumer(self.stream, api.ConsumerConfig(
                filter_subject=subject, deliver_subject=inbox, opt_start_seq=start,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                ack_policy=api.AckPolicy.NONE, mem_storage=True, num_replicas=1,
                inactive_threshold=REPLAY_IDLE))
            name = info.name
            while not out or out[-1][0] < end:
                msg = await sub.next_msg(timeout=REPLAY_TIMEOUT)
                out.append((msg.metadata.sequence.stream, decode(msg.data)))
        finally:
            await sub.unsubscribe()
            if name:  # no need to wait for it: the consumer also expires when idle
                with contextlib.suppress(Exception):
                    await nc.publish(f"$JS.API.CONSUMER.DELETE.{self.stream}.{name}",
                                     reply=nc.new_inbox())
        return [(seq, env) for seq, env in out if seq <= end]

    def _remember(self, ticket: Ticket, last_id: str) -> None:
        """Cache a ticket unless a newer state of it is cached already."""
        cached = self._cache.get(ticket.ticket_id)
        if cached is None or cached[0].version < ticket.version:
            self._cache[ticket.ticket_id] = (ticket, last_id)
        self._cache.move_to_end(ticket.ticket_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def load(self, ticket_id: str) -> Ticket:
        """The ticket as of its last event: cached state plus whatever came after it."""
        last = await self._last(self.ticket_subject(ticket_id))
        if last is None:
            self._cache.pop(ticket_id, None)
            return Ticket(ticket_id=ticket_id)
        assert last.seq is not None and last.data is not None
        last_id = (last.headers or {}).get("Nats-Msg-Id") or decode(last.data).id
        base, cached_id = self._cache.get(ticket_id, (None, ""))
        if base is not None and (base.version > last.seq or (
                base.version == last.seq and cached_id != last_id)):
            base = None  # not this stream's history (recreated under the same name)
        if base is not None and base.version == last.seq:
            self._cache.move_to_end(ticket_id)
            return base.copy()
        after = base.version if base else 0
        if _appended_at(last) == after:  # the last event was appended right after `after`
            events = [(last.seq, decode(last.data))]
        else:
            events = await self._after(self.ticket_subject(ticket_id), after, last)
        ticket = fold(base or ticket_id, events)
        self._remember(ticket, last_id)
        return ticket.copy()

    def delivered(self, ticket_id: str, seq: int, env: Envelope, appended_after: int | None
                  ) -> Ticket | None:
        """The ticket as of an event a consumer delivered, without a round trip: when the
        cached state is the one the event was appended after (its expected-sequence header;
        0: the event opened the subject), the event extends it. None when the cache cannot
        say (then `load`). A consumer that passes every event of a ticket here keeps it."""
        cached = self._cache.get(ticket_id)
        if cached is not None and cached[0].version == seq and cached[1] == env.id:
            return cached[0].copy()
        if appended_after is None:
            return None
        if cached is not None and cached[0].version == appended_after:
            base = cached[0]
        elif appended_after == 0:
            base = Ticket(ticket_id=ticket_id)
        else:
            return None
        ticket = fold(base, [(seq, env)])
        self._remember(ticket, env.id)
        return ticket.copy()

    async def append(
        self, ticket_id: str, items: Sequence[tuple[Event, str]], expected: int
    ) -> int:
        """Append (event, idempotency key) pairs if the ticket is still at `expected`."""
        subject = self.ticket_subject(ticket_id)
        # What lands right after a cached state at `expected` extends it in the cache.
        cached = self._cache.get(ticket_id)
        base = cached[0] if cached and cached[0].version == expected else (
            Ticket(ticket_id=ticket_id) if expected == 0 else None)
        landed: list[tuple[int, Envelope]] = []
        try:
            for event, key in items:
                env = envelope(event, subject=ticket_id, key=key, source=source_for(self.ns))
                headers = {
                    "Nats-Msg-Id": env.id,
                    "Nats-Expected-Last-Subject-Sequence": str(expected),
                    "Nats-Expected-Last-Subject-Sequence-Subject": subject,
                    "ce-type": env.type,
                    "Content-Type": STRUCTURED,
                    **trace.nats_headers(env.traceparent),
                }
                data = encode(env)
                try:
                    ack = await self.js.publish(subject, data, headers=headers)
                except APIError as exc:
                    if exc.err_code != WRONG_LAST_SEQUENCE:
                        raise
                    # The server checks the expected sequence before Msg-Id dedupe, so a
                    # retry of a publish that did land looks like a conflict: recognise
                    # our own event.
                    base = None  # what lies between is unknown here: the next load reads it
                    last = await self.js.get_msg(self.stream, subject=subject)
                    if not last.data or decode(last.data).id != env.id:
                        raise Conflict(ticket_id) from exc
                    assert last.seq is not None
                    expected = last.seq
                    continue
                log.debug("event_appended", ticket_id=ticket_id, event_id=env.id,
                          type=env.type.partition(".")[2], seq=ack.seq,
                          duplicate=ack.duplicate)
                if ack.duplicate:
                    base = None
                landed.append((ack.seq, decode(data)))
                expected = ack.seq
        finally:  # also after a conflict half-way: what landed is still a valid state
            if base is not None and landed:
                self._remember(fold(base, landed), landed[-1][1].id)
        return expected


def _appended_at(msg: api.RawStreamMsg) -> int | None:
    """The subject sequence an event was appended at (the expected-sequence header that
    `append` writes and the server enforced), None when it was published without one."""
    value = (msg.headers or {}).get("Nats-Expected-Last-Subject-Sequence")
    return int(value) if value and value.isdigit() else None


def link(ticket_id: str, mailbox: str) -> str:
    """Index value naming a ticket and its tenant, checkable before the ticket exists."""
    return f"{ticket_id}|{tenant(mailbox)}"


def message_key(mailbox: str, message_id: str) -> str:
    """Index key of a Message-ID within the mailbox's tenant (one mail, many tenants)."""
    return f"m:{tenant(mailbox)}|{message_id}"


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
    """Index in JetStream key-value buckets; `claim` is an atomic create.

    `update` writes at the revision this process last read or wrote for the key (an LRU of
    `revisions` entries) without reading first; the server refuses a stale revision, and
    only then is the key read. A key never seen is first tried as a create."""

    def __init__(self, js: JetStreamContext, ns: str, revisions: int = 10_000) -> None:
        self.js, self.ns, self.bucket = js, ns, f"{ns}_msgindex"
        self._kv: KeyValue | None = None
        self._counters: KeyValue | None = None
        self._seen: OrderedDict[str, tuple[str | None, int]] = OrderedDict()
        self.revisions = revisions

    async def _bucket(self) -> KeyValue:
        if self._kv is None:  # one lookup round trip per process, not per operation
            self._kv = await self.js.key_value(self.bucket)
        return self._kv

    def _saw(self, name: str, value: str | None, revision: int | None) -> None:
        if revision is None:
            return
        self._seen[name] = (value, revision)
        self._seen.move_to_end(name)
        while len(self._seen) > self.revisions:
            self._seen.popitem(last=False)

    async def get(self, key: str) -> str | None:
        kv = await self._bucket()
        name = digest_key(key)
        try:
            entry = await kv.get(name)
        except KeyNotFoundError:
            self._seen.pop(name, None)
            return None
        value = entry.value.decode() if entry.value else None
        self._saw(name, value, entry.revision)
        return value

    async def put(self, key: str, value: str) -> None:
        kv = await self._bucket()
        name = digest_key(key)
        self._saw(name, value, await kv.put(name, value.encode()))

    async def claim(self, key: str, value: str) -> str:
        """Store `value` unless the key is taken; return whatever the key holds now."""
        kv = await self._bucket()
        name = digest_key(key)
        try:
            self._saw(name, value, await kv.create(name, value.encode()))
            return value
        except KeyWrongLastSequenceError:
            return await self.get(key) or value

    async def update(self, key: str, change: Callable[[str | None], str]) -> str:
        """Read-modify-write that loses no concurrent update: write only at the read revision."""
        kv = await self._bucket()
        name = digest_key(key)
        guess = self._seen.get(name)  # None: try a create
        while True:
            old, revision = guess if guess is not None else (None, 0)
            value = change(old)
            try:
                if guess is None:
                    written = await kv.create(name, value.encode())
                else:
                    written = await kv.update(name, value.encode(), last=revision)
                self._saw(name, value, written)
                return value
            except KeyWrongLastSequenceError:  # created or changed meanwhile: read it
                log.debug("kv_update_conflict_retry", key=key)
            try:
                entry = await kv.get(name)
                guess = (entry.value.decode() if entry.value else None, entry.revision or 0)
            except KeyNotFoundError:
                guess = None

    async def next_number(self, ticket_id: str) -> int:
        """A short, unique number: the revision of a put to the counters bucket."""
        if self._counters is None:
            self._counters = await self.js.key_value(f"{self.ns}_counters")
        return int(await self._counters.put("ticket", ticket_id.encode()))



class RawMailStore(Protocol):
    """Port: raw RFC 5322 bytes, kept by their sha256 (hex), which `put` returns."""

    async def put(self, raw: bytes) -> str: ...
    async def get(self, digest: str) -> bytes | None: ...


class JetStreamRawStore:
    """Raw RFC 5322 bytes by sha256: a mail that fits one NATS message is one publish to
    `{ns}.raw.<digest>` (stream `{NS}_RAW`), a bigger one goes to the object store."""

    def __init__(self, js: JetStreamContext, ns: str) -> None:
        self.js, self.bucket = js, f"{ns}_raw"
        self.stream, self.prefix = f"{ns.upper()}_RAW", f"{ns}.raw"
        self._obs: ObjectStore | None = None

    async def _store(self) -> ObjectStore:
        if self._obs is None:
            self._obs = await self.js.object_store(self.bucket)
        return self._obs

    def inline_max(self) -> int:
        """The largest mail put as one message: the server's max payload less header room."""
        nc: Client = self.js._nc
        return min(RAW_INLINE_MAX, nc.max_payload) - RAW_HEADROOM

    async def put(self, raw: bytes) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        if len(raw) <= self.inline_max():
            headers = {"Nats-Msg-Id": digest, "Nats-Expected-Last-Subject-Sequence": "0"}
            try:
                await self.js.publish(f"{self.prefix}.{digest}", raw, headers=headers)
            except APIError as exc:  # wrong last sequence: the digest's bytes are there
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
            return digest
        obs = await self._store()
        try:
            await obs.get_info(digest)
        except NotFoundError:
            await obs.put(digest, raw)
        return digest

    async def get(self, digest: str) -> bytes | None:
        try:
            msg = await self.js.get_msg(self.stream, subject=f"{self.prefix}.{digest}")
            return msg.data or b""
        except NotFoundError:
            pass
        obs = await self._store()
        try:
            result = await obs.get(digest)
        except NotFoundError:
            return None
        return result.data


RawStore = JetStreamRawStore  # the name the services compose it by


async def close(nc: Client) -> None:
    """Close a connection that may already be dead (nats-py raises on a lost socket)."""
    with contextlib.suppress(OSError):
        await nc.close()
