"""Queue projections: the event stream applied to PostgreSQL, batch and checkpoint together.

A batch that fails on a poison event (bad data, not a sick server) is bisected: the rest is
applied, the poison event is parked (tidydesk.common.parking) and the checkpoint moves past
it. `rebuild` projects the stream into a schema beside the live one and swaps it in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing, suppress
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError

from tidydesk.common import db, metrics, parking
from tidydesk.common.events import (
    AutoRecorded,
    ConversationAdopted,
    ConversationMoved,
    Envelope,
    FollowupAcknowledged,
    FollowupRecorded,
    MessageHeld,
    MessageReceived,
    MessageRejected,
    MessageThreaded,
    ReplySent,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketMerged,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    TicketSplit,
    TicketTagged,
    TicketUnmerged,
    TicketUntagged,
    decode,
)
from tidydesk.text.script import language_code
from tidydesk.tickets.mailbox import tenant

log = structlog.get_logger()
TABLES = ("tickets", "messages", "rejected", "events", "ticket_tags")
EVENT_COLUMNS = ("seq", "id", "type", "ticket_id", "time", "data")
_json = msgspec.json.Encoder()
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
Batch = list[tuple[int, bytes]]
WRITE_LOCK = 7367111  # pg_advisory_xact_lock(WRITE_LOCK, hashtext(schema)): one writer a time
REPLAY_LOCK = 7367112  # pg_try_advisory_lock(REPLAY_LOCK, hashtext(ns)): one replay a time
# SQLSTATE classes that name the event's data: data exception, integrity, program limit.
# Not class 42 (undefined table, syntax): it names the SQL or schema, and parking would then
# swallow every event; nor 08/53/57 (connection, resources, shutdown): those are transient.
POISON_CLASSES = ("22", "23", "54")


async def _live(conn: Conn, ticket_id: str) -> str:
    """The ticket a merged ticket's rows went to: the end of its merge chain as projected."""
    for _ in range(10):  # MAX_HOPS of the threading engine
        into = await conn.fetchval(
            "SELECT data->'data'->>'into' FROM events WHERE ticket_id = $1 AND type = ANY("
            "'{tidydesk.ticket.merged,tidydesk.conversation.moved}'::text[]) AND EXISTS (SELECT 1"
            " FROM tickets WHERE id = $1 AND status = 'merged') ORDER BY seq DESC LIMIT 1",
            ticket_id)
        if not into or into == ticket_id:
            break
        ticket_id = into
    return str(ticket_id)


class CheckpointMoved(Exception):
    """Someone reset the checkpoint (a replay); restart reading from it."""


async def apply(conn: Conn, seq: int, env: Envelope, writes: Writes | None = None,
                raw: bytes | None = None) -> None:
    """Apply one event to the projection tables (inside the caller's transaction).

    With `writes`, what can wait is collected there for `Writes.flush`; `raw` is the event as
    it came off the stream (else `env` is encoded again for its `events` row).
    """
    own = Writes() if writes is None else writes
    if not await own.add(conn, seq, env, raw):
        await own.flush(conn)  # this event reads or rewrites what came before it
        await _apply_alone(conn, env)
        match env.data:
            case MessageReceived() | MessageRejected() | AutoRecorded():  # no `events` row
                pass
            case e:
                own.events(seq, env, e.ticket_id, raw)
        await own.flush(conn)
    if writes is None:
        await own.flush(conn)


async def _apply_alone(conn: Conn, env: Envelope) -> None:
    """The events `Writes` does not collect (rarer, or reading the tables), one at a time."""
    t = env.time
    match env.data:
        case TicketMerged() as e:  # into the live end: `into` may have merged on meanwhile
            into = await _live(conn, e.into)
            moved = await conn.fetch(
                "UPDATE messages SET ticket_id = $2 WHERE ticket_id = $1 RETURNING threaded_by",
                e.ticket_id, into)
            count = sum(r["threaded_by"] != "held" for r in moved)
            await conn.execute("UPDATE tickets SET status = 'merged', message_count = 0 "
                               "WHERE id = $1", e.ticket_id)
            await conn.execute("UPDATE tickets SET message_count = message_count + $2, "
                               "updated_at = $3 WHERE id = $1", into, count, t)
        case TicketUnmerged() as e:  # its own rows come back from wherever they went
            back = await conn.fetch(
                "UPDATE messages m SET ticket_id = $1 FROM messages o"
                " WHERE o.tenant = m.tenant AND o.message_id = m.message_id"
                " AND m.message_id = ANY($2::text[]) AND o.ticket_id IS DISTINCT FROM $1"
                " AND m.tenant = (SELECT lower(regexp_replace(mailbox, '^.*@', ''))"
                " FROM tickets WHERE id = $1) RETURNING o.ticket_id AS was, m.threaded_by",
                e.ticket_id, list(e.message_ids))
            counted = [r["was"] for r in back if r["threaded_by"] != "held"]
            for was in set(counted):
                await conn.execute("UPDATE tickets SET message_count = message_count - $2 "
                                   "WHERE id = $1", was, counted.count(was))
            await conn.execute("UPDATE tickets SET status = $2, message_count = message_count"
                               " + $3 WHERE id = $1", e.ticket_id, e.status, len(counted))
        case TicketTagged() as e:
            await conn.execute(
                "INSERT INTO ticket_tags VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                e.ticket_id, e.tag, e.rule, e.agent, t)
        case TicketUntagged() as e:
            await conn.execute("DELETE FROM ticket_tags WHERE ticket_id = $1 AND tag = $2",
                               e.ticket_id, e.tag)
        case TicketAssigned() as e:
            await conn.execute("UPDATE tickets SET assignee = $2, team = $3 WHERE id = $1",
                               e.ticket_id, e.agent, e.team)
        case TicketEscalated() as e:
            await conn.execute("UPDATE tickets SET escalated_to = $2 WHERE id = $1",
                               e.ticket_id, e.lead)
        case ConversationMoved() as e:  # its rows move with conversation.adopted on `into`
            await conn.execute("UPDATE tickets SET status = 'merged', message_count = 0 "
                               "WHERE id = $1", e.ticket_id)
        case ConversationAdopted() as e:
            ids = [m.message_id for m in e.messages]
            held = [h.message_id for h in e.held]  # some arrive held: the target's strangers
            await conn.execute(  # the source ticket's rows, not another tenant's copies
                "UPDATE messages SET ticket_id = $3, threaded_by = CASE WHEN message_id = "
                "ANY($2::text[]) THEN 'held' ELSE threaded_by END "
                "WHERE message_id = ANY($1::text[] || $2::text[]) AND ticket_id = $4",
                ids, held, e.ticket_id, e.from_ticket)
            await conn.execute("UPDATE tickets SET message_count = message_count + $2 "
                               "WHERE id = $1", e.ticket_id, len(e.messages))
        case AutoRecorded() as e:  # no ticket: the row keeps ticket_id NULL
            await conn.execute("UPDATE messages SET threaded_by = 'auto' WHERE message_id = $1"
                               " AND tenant = $2", e.message_id, tenant(e.mailbox))


# A status event's effect on (status, solved_at, reopen_count): the new status; solved_at
# set to `at`, or with `keep` to coalesce(solved_at, at); reopen_count plus `reopens`.
Status = tuple[str, bool, datetime | None, int]
_VERDICTS = {TicketReopened: "reopen", FollowupAcknowledged: "acknowledge",
             FollowupRecorded: "auto", TicketSplit: "split"}


class Writes:
    """The writes of a batch, collected by statement and written set-based by `flush`.

    The result is that of applying one event at a time: statements run in a fixed order
    (inserts, message updates, ticket updates, `events` rows), which commutes with stream
    order except where an insert lands on a row that a pending update refers to (the update
    would have missed it) or two updates of one statement hit one message: `add` flushes
    first there. Counts add up and status events fold per ticket, as applied in order; a
    message threaded into a ticket opened in the same flush is inserted threaded (`_fold`),
    not inserted and then updated, which rewrote the whole row and its four index entries.

    `fresh`: every event is past the checkpoint, so no `events` row has its sequence yet and
    the rows are copied in (COPY) rather than inserted with ON CONFLICT DO NOTHING.
    """

    def __init__(self, *, fresh: bool = False) -> None:
        self.fresh = fresh
        self._clear()

    def _clear(self) -> None:
        self.messages: list[tuple[object, ...]] = []  # inserted; the first of a key wins
        self.first: dict[tuple[str, str], int] = {}  # (tenant, message_id): its row there
        self.folded: dict[str, int] = {}  # message_id: its row, inserted threaded (`_fold`)
        self.opening: dict[str, str] = {}  # tickets opened in this flush: their tenant
        self.rejected: list[tuple[object, ...]] = []
        self.opened: list[tuple[object, ...]] = []
        self.threaded: dict[str, tuple[str, str]] = {}  # message_id: (ticket, threaded_by)
        self.decided: dict[str, tuple[str, str]] = {}  # message_id: (ticket, decision)
        self.counted: dict[str, tuple[int, datetime | None]] = {}  # +count, first response
        self.status: dict[str, Status] = {}
        self.refs: set[str] = set()  # message and ticket ids the pending updates refer to
        self.rows: list[tuple[int, str, str, str, datetime, str]] = []  # `events`
        self.updated: dict[str, datetime] = {}  # the last event's time wins, as in order

    async def add(self, conn: Conn, seq: int, env: Envelope, raw: bytes | None = None) -> bool:
        """Collect the event's writes (flushing first if order demands); False: not mine."""
        t = env.time
        match env.data:
            case MessageReceived() as e:
                await self._inserting(conn, e.message_id)
                self._message((tenant(e.mailbox), e.message_id, e.digest, None, e.mailbox,
                               e.sender, e.subject, t, e.text, e.reply, e.auto, None,
                               e.claimed_message_id))
                return True
            case MessageRejected() as e:
                self.rejected.append((e.digest, e.reason, e.mailbox, e.size, t))
                return True
            case TicketOpened() as e:
                await self._inserting(conn, e.ticket_id)
                self.opened.append((e.ticket_id, e.number, e.subject, e.requester, e.mailbox,
                                    e.split_from, t, e.message_id))
                self.opening[e.ticket_id] = tenant(e.mailbox)
                self.refs |= {e.ticket_id, e.message_id}  # its language reads the message
            case MessageThreaded() | MessageHeld() as e:
                if e.message_id in self.threaded or e.message_id in self.folded:
                    await self.flush(conn)
                held = isinstance(e, MessageHeld)  # in the ticket, not counted as its message
                if not self._fold(e.ticket_id, e.message_id, "held" if held else e.method):
                    self.threaded[e.message_id] = (e.ticket_id, "held" if held else e.method)
                self.refs |= {e.ticket_id, e.message_id}
                if not held:
                    self._count(e.ticket_id, None)
            case TicketReopened() | FollowupAcknowledged() | FollowupRecorded() | \
                    TicketSplit() as e:
                if e.message_id in self.decided:
                    await self.flush(conn)
                self.decided[e.message_id] = (e.ticket_id, _VERDICTS[type(e)])
                self.refs |= {e.ticket_id, e.message_id}
                if isinstance(e, TicketReopened):
                    self._status(e.ticket_id, ("open", False, None, 1))
            case TicketSolved() as e:
                self._status(e.ticket_id, ("solved", False, t, 0))
            case TicketClosed() as e:
                self._status(e.ticket_id, ("closed", True, t, 0))
            case ReplySent() as e:
                await self._inserting(conn, e.message_id)
                self._message((tenant(e.sender), e.message_id, "", e.ticket_id, e.sender,
                               e.sender, e.subject, t, e.text, e.text, None, "reply.sent",
                               None))
                self._count(e.ticket_id, None if e.auto else t)  # out of hours: no response
            case TicketMerged() | TicketUnmerged() | ConversationMoved() | \
                    ConversationAdopted() | TicketTagged() | TicketUntagged() | \
                    TicketAssigned() | TicketEscalated() | AutoRecorded():
                return False
            case _:  # kudos, notices ...: counted from `events`, the ticket stays as it is
                pass
        self.events(seq, env, env.data.ticket_id, raw)
        return True

    def _message(self, row: tuple[object, ...]) -> None:
        self.first.setdefault((str(row[0]), str(row[1])), len(self.messages))
        self.messages.append(row)

    def _fold(self, ticket: str, message_id: str, threaded_by: str) -> bool:
        """Write a thread into the message's pending insert instead of updating it after.

        Only where the update would hit exactly that row: the ticket is opened in this flush
        (so the update would pick its tenant's row) and that row is pending here; if the row
        exists already, the insert's ON CONFLICT sets the two columns there instead.
        """
        at = self.first.get((self.opening.get(ticket, ""), message_id))
        if at is None:
            return False
        row = self.messages[at]
        self.messages[at] = (*row[:3], ticket, *row[4:11], threaded_by, row[12])
        self.folded[message_id] = at
        return True

    async def _inserting(self, conn: Conn, key: str) -> None:
        if key in self.refs:
            await self.flush(conn)

    def _count(self, ticket: str, response: datetime | None) -> None:
        n, first = self.counted.get(ticket, (0, None))
        self.counted[ticket] = (n + 1, response if first is None else first)
        self.refs.add(ticket)

    def _status(self, ticket: str, new: Status) -> None:
        status, keep, at, reopens = new
        if old := self.status.get(ticket):
            if keep:  # coalesce(what the earlier ones leave, at); after a reopen's NULL: at
                keep, at = (old[1], old[2]) if old[1] or old[2] is not None else (False, at)
            reopens += old[3]
        self.status[ticket] = (status, keep, at, reopens)
        self.refs.add(ticket)

    def events(self, seq: int, env: Envelope, ticket_id: str, raw: bytes | None = None) -> None:
        """Collect what every ticket event ends with: its `events` row, its updated_at."""
        self.rows.append((seq, env.id, env.type, ticket_id, env.time,
                          (_json.encode(env) if raw is None else raw).decode()))
        self.updated[ticket_id] = env.time

    async def flush(self, conn: Conn) -> None:
        """Write what was collected (inside the caller's transaction) and start afresh."""
        if self.messages:
            # rows threaded by `_fold` take their thread onto an existing row of their key
            # (as the update would have); the others leave it as it is. Later rows of a
            # folded key are left out: the folded one is their key's first, so they would
            # change nothing
            if not self.folded:
                await conn.execute(f"{_insert_messages(1)} DO NOTHING",
                                   *_columns(self.messages))
            else:
                folded = [self.messages[i] for i in self.folded.values()]
                keys = {(r[0], r[1]) for r in folded}
                plain = [r for r in self.messages if (r[0], r[1]) not in keys]
                await conn.execute(_MESSAGES, *_columns(plain, 13), *_columns(folded, 13))
        if self.rejected:
            await conn.execute(
                "INSERT INTO rejected SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::bigint[], $5::timestamptz[]) ON CONFLICT DO NOTHING",
                *_columns(self.rejected))
        if self.opened:
            ids, numbers, subjects, requesters, mailboxes, splits, times, mids = _columns(
                self.opened)
            replies: dict[str, str] = {r[0]: r[1] for r in await conn.fetch(
                "SELECT u.i, m.reply FROM unnest($1::text[], $2::text[], $3::text[])"
                " AS u(i, mid, mb) JOIN messages m ON m.message_id = u.mid"  # the tenant's row
                " AND m.tenant = lower(regexp_replace(u.mb, '^.*@', ''))", ids, mids, mailboxes)}
            # a new ticket is inserted as its events in this flush leave it (every one is
            # after its ticket.opened: `add` flushed what came before), not updated after
            counted = [self.counted.pop(i, (0, None)) for i in ids]
            status = [self.status.pop(i, ("open", False, None, 0)) for i in ids]
            await conn.execute(
                "INSERT INTO tickets (id, number, status, subject, requester, mailbox,"
                " split_from, opened_at, updated_at, language, message_count,"
                " first_response_at, solved_at, reopen_count) SELECT i, n, st, s, r, m, sp, t,"
                " up, l, c, fr, sa, ro FROM unnest($1::text[], $2::bigint[], $3::text[],"
                " $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[],"
                " $9::timestamptz[], $10::int[], $11::timestamptz[], $12::text[], $13::bool[],"
                " $14::timestamptz[], $15::int[]) AS u(i, n, s, r, m, sp, t, l, up, c, fr, st,"
                " keep, sa, ro)",
                ids, numbers, subjects, requesters, mailboxes, splits, times,
                [language_code(f"{s}\n{replies.get(i, '')}") or None
                 for i, s in zip(ids, subjects, strict=True)],
                [self.updated.pop(i) for i in ids], *_columns(counted), *_columns(status))
        # messages are keyed (tenant, message_id) (002_messages_per_tenant.sql): a ticket's
        # message is the row of the ticket's tenant (any row while the ticket is not projected)
        for sets, pending in (("ticket_id = u.ticket, threaded_by = u.value", self.threaded),
                              ("decision = u.value", self.decided)):
            if pending:  # one row per message_id: UPDATE ... FROM takes one match a row
                await conn.execute(
                    f"UPDATE messages SET {sets} FROM unnest($1::text[], $2::text[],"
                    " $3::text[]) AS u(mid, ticket, value) WHERE message_id = u.mid AND tenant ="
                    " coalesce((SELECT lower(regexp_replace(mailbox, '^.*@', '')) FROM tickets"
                    " WHERE id = u.ticket), tenant)",
                    list(pending), *_columns(list(pending.values())))
        if tickets := list(self.updated.keys() | self.counted.keys() | self.status.keys()):
            counts = [self.counted.get(i, (0, None)) for i in tickets]
            changes = [self.status.get(i) or (None, False, None, 0) for i in tickets]
            await conn.execute(
                "UPDATE tickets SET updated_at = coalesce(u.at, updated_at),"
                " message_count = message_count + u.n,"
                " first_response_at = coalesce(first_response_at, u.fr),"
                " status = coalesce(u.s, status), solved_at = CASE WHEN u.s IS NULL THEN"
                " solved_at WHEN u.keep THEN coalesce(solved_at, u.sa) ELSE u.sa END,"
                " reopen_count = reopen_count + u.r FROM unnest($1::text[], $2::timestamptz[],"
                " $3::int[], $4::timestamptz[], $5::text[], $6::bool[], $7::timestamptz[],"
                " $8::int[]) AS u(i, at, n, fr, s, keep, sa, r) WHERE id = u.i",
                tickets, [self.updated.get(i) for i in tickets], *_columns(counts),
                *_columns(changes))
        if self.rows and self.fresh:
            await conn.copy_records_to_table("events", records=self.rows, columns=EVENT_COLUMNS)
        elif self.rows:  # a parked event applied again may have its row already
            await conn.execute(
                "INSERT INTO events (seq, id, type, ticket_id, time, data) SELECT s, i, ty, tk,"
                " tm, d::json FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
                " $5::timestamptz[], $6::text[]) AS u(s, i, ty, tk, tm, d) ON CONFLICT DO NOTHING",
                *_columns(self.rows))
        self._clear()


def _columns(rows: Iterable[tuple[Any, ...]], width: int = 0) -> list[list[Any]]:
    """Rows as column lists, the parameters of an `unnest` (`width` empty ones for none)."""
    return [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(width)]


def _insert_messages(first: int) -> str:
    """INSERT INTO messages the rows of an `unnest` of parameters $first .. $first+12."""
    types = ["text"] * 7 + ["timestamptz"] + ["text"] * 5
    return ("INSERT INTO messages (tenant, message_id, digest, ticket_id, mailbox, sender,"
            " subject, received_at, body, reply, auto, threaded_by, claimed_message_id)"
            " SELECT * FROM unnest("
            + ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types))
            + ") ON CONFLICT (tenant, message_id)")


_MESSAGES = (f"WITH plain AS ({_insert_messages(1)} DO NOTHING) {_insert_messages(14)}"
             " DO UPDATE SET ticket_id = EXCLUDED.ticket_id, threaded_by = EXCLUDED.threaded_by")


def is_poison(exc: BaseException) -> bool:
    """Would applying this event fail the same way again? Then park it instead of retrying."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate)[:2] in POISON_CLASSES
    # encoding failures; asyncpg's client-side DataError is a ValueError, a lost connection
    # (InterfaceError, OSError) is not
    return isinstance(exc, ValueError | TypeError | msgspec.MsgspecError)


class Projector:
    """Reads the event stream from the stored checkpoint and applies it in batches."""

    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool, ns: str,
                 name: str = "queue", batch: int = 1024,
                 progress: Callable[[int], None] | None = None, *, durable: bool = True) -> None:
        self.js, self.pool, self.ns, self.name, self.batch = js, pool, ns, name, batch
        # False: a batch's commit does not wait for its WAL flush. Only for a rebuild's build
        # schema, which a crash discards anyway; the live checkpoint is always durable.
        self.durable = durable
        self.stream = f"{ns.upper()}_EVENTS"
        self.progress = progress  # called with the checkpoint after every batch
        self.parked: set[int] = set()  # stream sequences this projector gave up on
        self.known: set[int] = set()  # sequences with a park record already: not parked again
        self.applied: list[tuple[str, datetime]] = []  # (type, time) of the last batch

    async def checkpoint(self) -> int:
        value = await self.pool.fetchval("SELECT seq FROM checkpoints WHERE name = $1", self.name)
        return int(value or 0)

    async def reset(self, seq: int = 0) -> None:
        """Empty the projection and set its checkpoint to `seq` (the start of a replay)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
            await conn.execute(
                "INSERT INTO checkpoints VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = $2",
                self.name, seq,
            )

    async def retry(self, seq: int, env: Envelope) -> None:
        """Apply one parked event again, in its own transaction; the checkpoint stays."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                               WRITE_LOCK)
            await apply(conn, seq, env)

    async def apply_batch(self, conn: Conn, msgs: Batch, after: int, *,
                          bisect: bool = True) -> int:
        """Apply the events past the checkpoint and move it, in the caller's transaction.

        `after` is the checkpoint the caller read from; a lower one now means a reset. Without
        `bisect` a poison event fails the batch (no savepoint to fall back on): the caller
        then rolls back and applies it again with `bisect`.
        """
        self.applied = []
        # one round trip: the write lock, then the checkpoint row (made if missing) locked and
        # read as last committed (what ON CONFLICT DO UPDATE sees, whatever the snapshot)
        done = int(await conn.fetchval(
            "INSERT INTO checkpoints SELECT $1, 0 FROM (SELECT pg_advisory_xact_lock($2,"
            " hashtext(current_schema()))" + ("" if self.durable else
                                               ", set_config('synchronous_commit', 'off', true)")
            + ") AS write_lock ON CONFLICT (name) DO UPDATE SET seq = checkpoints.seq"
            " RETURNING seq", self.name, WRITE_LOCK))
        if done < after:
            raise CheckpointMoved(done)
        fresh = [(seq, data) for seq, data in msgs if seq > done]  # others may be further
        if not fresh:
            return done
        events: list[tuple[int, bytes, Envelope]] = []
        for seq, data in fresh:
            try:
                events.append((seq, data, decode(data)))
            except msgspec.MsgspecError as exc:
                await self._park(seq, data, f"undecodable event: {exc}")
        if bisect:
            await self._apply_all(conn, events)
        else:
            await self._apply(conn, events)
        self.applied = [(env.type, env.time) for _, _, env in events]
        done = fresh[-1][0]
        await conn.execute("UPDATE checkpoints SET seq = $2 WHERE name = $1", self.name, done)
        return done

    async def _apply_all(self, conn: Conn, events: list[tuple[int, bytes, Envelope]]) -> None:
        """Apply in order under a savepoint; on a poison failure bisect and park the culprit."""
        if not events:
            return
        try:
            async with conn.transaction():
                await self._apply(conn, events)
        except Exception as exc:
            if not is_poison(exc):
                raise  # transient: the whole transaction goes, the checkpoint stays
            if len(events) == 1:
                await self._park(events[0][0], events[0][1], f"{type(exc).__name__}: {exc}")
                return
            half = len(events) // 2
            await self._apply_all(conn, events[:half])
            await self._apply_all(conn, events[half:])

    @staticmethod
    async def _apply(conn: Conn, events: list[tuple[int, bytes, Envelope]]) -> None:
        writes = Writes(fresh=True)  # apply_batch took only sequences past the checkpoint
        for seq, raw, env in events:
            await apply(conn, seq, env, writes, raw)
        await writes.flush(conn)

    async def _park(self, seq: int, data: bytes, error: str) -> None:
        self.parked.add(seq)
        if seq not in self.known:  # not again when its batch is applied again
            await parking.park(self.js, self.ns, self.name, seq, data, error, 1)
            self.known.add(seq)

    async def _read(self, start: int, end: int | None) -> AsyncGenerator[Batch, None]:
        """The stream from `start` in batches; with `end`, until past it or nothing more."""
        async with _Pull(self.js, self.stream, start, self.batch, live=end is None) as pull:
            while batch := await pull.next():
                # the projection's lag: events after this batch (the server's count)
                metrics.PENDING.labels(self.name).set(pull.pending)
                yield batch
                if end is not None and batch[-1][0] >= end:
                    return

    async def _last_seq(self) -> int:
        return int((await self.js.stream_info(self.stream)).state.last_seq)

    async def run(self, stop_at_end: bool = False) -> int:
        """Project until cancelled (or, with stop_at_end, until the stream's end)."""
        projected, analyze_at = 0, 1024
        while True:
            done = await self.checkpoint()
            end = await self._last_seq() if stop_at_end else None
            if end is not None and done >= end:
                return done
            try:
                async with aclosing(self._read(done + 1, end)) as batches:
                    async for msgs in batches:
                        async with self.pool.acquire() as conn:
                            try:  # without savepoints, two round trips fewer a batch
                                async with conn.transaction():
                                    done = await self.apply_batch(conn, msgs, done,
                                                                  bisect=False)
                            except Exception as exc:
                                if not is_poison(exc):
                                    raise
                                async with conn.transaction():  # find the culprit
                                    done = await self.apply_batch(conn, msgs, done)
                        projected += len(msgs)
                        if projected >= analyze_at:  # a rebuild's tables outgrow their
                            # statistics: without fresh ones the planner joins a batch
                            # to whole tables by sequential scans
                            await self.pool.execute("ANALYZE tickets, messages")
                            analyze_at *= 2
                        if not stop_at_end:  # live events, not a rebuild of old ones
                            for kind, at in self.applied:
                                metrics.projected(kind, at)
                        if self.progress:
                            self.progress(done)
            except CheckpointMoved as moved:
                log.info("projection_restart", checkpoint=int(str(moved.args[0])))

    async def catch_up(self, conn: Conn) -> int:
        """Apply everything up to the stream's current end, in the caller's transaction."""
        done = int(await conn.fetchval(
            "SELECT seq FROM checkpoints WHERE name = $1", self.name) or 0)
        end = await self._last_seq()
        while done < end:
            async with aclosing(self._read(done + 1, end)) as batches:
                async for msgs in batches:
                    done = await self.apply_batch(conn, msgs, done)
        return done


class _Pull:
    """A pull consumer whose messages land in a buffer as they arrive, while a batch is applied.

    One pull request is out at a time, for two batches, and the next goes out once the buffer
    holds less than a batch: reading runs ahead of applying, by two batches at most. Through
    a subscription callback a message costs a list append, not the task per message that
    `fetch` spends on its `wait_for`. Live, a request lingers for `EXPIRES` seconds; otherwise
    it takes what is stored (`no_wait`), and a request that ends short is the end. Live, a
    batch short of `batch` waits until its oldest event has been here `LINGER` seconds: at a
    few hundred mails a second a batch was 5 events, and every batch costs its transaction,
    lock and checkpoint statements.
    """

    EXPIRES = 1.0
    LINGER = 0.01

    def __init__(self, js: JetStreamContext, stream: str, start: int, batch: int, *,
                 live: bool) -> None:
        self.js, self.stream, self.start, self.batch, self.live = js, stream, start, batch, live
        # what nats.py's pull subscription uses too: the context's connection and API prefix
        self.nc, self.api = js._nc, js._prefix
        self.buffer: Batch = []
        self.pending = 0  # the server's count of messages after the last one delivered
        self.arrived = asyncio.Event()
        self.asked = 0  # messages the request out may still deliver; 0: none is out
        self.ended = False  # not live: a request ended short, nothing more is stored
        self.failed: BaseException | None = None
        self.oldest = 0.0  # loop time the oldest buffered event arrived
        ask: dict[str, int | bool] = {"batch": 2 * batch}
        if live:
            ask["expires"] = int(self.EXPIRES * 1e9)
        else:  # without `expires`: the server would let it linger
            ask["no_wait"] = True
        self.request = _json.encode(ask)

    async def __aenter__(self) -> _Pull:
        info = await self.js.add_consumer(self.stream, config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.start,
            ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0))
        self.consumer = str(info.name)
        self.subject = f"{self.api}.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}"
        self.inbox = self.nc.new_inbox()
        self.sub = await self.nc.subscribe(self.inbox, cb=self._arrived)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with suppress(Exception):  # if not, the consumer goes once inactive
            await self.sub.unsubscribe()
            await self.js.delete_consumer(self.stream, self.consumer)

    async def _arrived(self, msg: Msg) -> None:
        if status := msg.headers and msg.headers.get(api.Header.STATUS):
            if status not in (api.StatusCode.NO_MESSAGES, api.StatusCode.REQUEST_TIMEOUT,
                              api.StatusCode.CONFLICT):
                self.failed = APIError.from_msg(msg)
            self.asked = 0  # the request ended short: expired, or nothing more is stored
            self.ended = not self.live
        else:
            meta = msg.metadata
            if not self.buffer:
                self.oldest = asyncio.get_running_loop().time()
            self.buffer.append((meta.sequence.stream, msg.data))
            self.pending = meta.num_pending
            self.asked = max(self.asked - 1, 0)
        self.arrived.set()

    async def next(self) -> Batch:
        """The next batch, at most `batch` events; empty (not live): nothing more is stored."""
        while True:
            if self.failed is not None:
                raise self.failed
            if not self.asked and not self.ended and len(self.buffer) < self.batch:
                self.asked = 2 * self.batch
                await self.nc.publish(self.subject, self.request, reply=self.inbox)
            if self.buffer:
                short = self.live and len(self.buffer) < self.batch
                wait = self.oldest + self.LINGER - asyncio.get_running_loop().time()
                if short and wait > 0:
                    await asyncio.sleep(wait)  # more arrive meanwhile, by the callback
                    continue
                batch, self.buffer = self.buffer[:self.batch], self.buffer[self.batch:]
                return batch
            if self.ended:
                return []
            self.arrived.clear()
            try:
                async with asyncio.timeout(2 * self.EXPIRES):
                    await self.arrived.wait()
            except TimeoutError:  # a request lost with a reconnect never ends: ask again
                self.asked = 0
                self.ended = not self.live


class Rebuilt(msgspec.Struct, frozen=True):
    """What a rebuild did: stream sequences first..last, and what the new projection holds."""

    first: int
    last: int
    tickets: int
    parked: int


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def rebuild(js: JetStreamContext, dsn: str, ns: str, from_seq: int = 1,
                  progress: Callable[[int], None] | None = None) -> Rebuilt:
    """Project the stream into schema `{ns}_build` beside the live `{ns}`, then swap it in.

    The swap transaction takes the live projector's write lock, applies what arrived during
    the build, and renames `{ns}` to `{ns}_old` and `{ns}_build` to `{ns}`: readers (whose
    search_path names `{ns}`) see the old queue or the new one, never a half-built one, and a
    running projector continues from the new checkpoint. Events before `from_seq` are left out.
    """
    build, old = f"{ns}_build", f"{ns}_old"
    info = (await js.stream_info(f"{ns.upper()}_EVENTS")).state
    if from_seq < 1 or from_seq > max(info.last_seq, 1):
        raise ValueError(f"from_seq {from_seq} is outside the stream's sequences "
                         f"1..{info.last_seq}")
    admin = await asyncpg.connect(dsn, timeout=5)
    try:
        if not await admin.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))",
                                    REPLAY_LOCK, ns):
            raise RuntimeError(f"another replay of namespace {ns!r} is running")
        # leftovers of an interrupted replay: a build never swapped in, or an old copy
        await admin.execute(f"DROP SCHEMA IF EXISTS {_quote(build)} CASCADE;"
                            f" DROP SCHEMA IF EXISTS {_quote(old)} CASCADE")
        pool = await db.connect(dsn, build, attempts=1)
        try:
            await db.migrate(pool)
            projector = Projector(js, pool, ns, progress=progress, durable=False)
            projector.known = {r.stream_seq for _, r in await parking.records(js, ns)
                               if r.consumer == projector.name}
            await projector.reset(from_seq - 1)
            await projector.run(stop_at_end=True)
            projector.durable = True  # the swap is the live projection's from now on
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                                   WRITE_LOCK, ns)
                last = await projector.catch_up(conn)
                tickets = int(await conn.fetchval("SELECT count(*) FROM tickets"))
                if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", ns):
                    await conn.execute(f"ALTER SCHEMA {_quote(ns)} RENAME TO {_quote(old)}")
                await conn.execute(f"ALTER SCHEMA {_quote(build)} RENAME TO {_quote(ns)}")
        finally:
            await pool.close()
        await admin.execute(f"DROP SCHEMA IF EXISTS {_quote(old)} CASCADE")
    finally:
        await admin.close()
    return Rebuilt(first=max(from_seq, info.first_seq), last=last, tickets=tickets,
                   parked=len(projector.parked))
