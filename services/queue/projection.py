"""Queue projections: the event stream applied to PostgreSQL, batch and checkpoint together."""

from __future__ import annotations

import asyncpg
import msgspec
import structlog
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api

from services.common.events import (
    Envelope,
    FollowupAcknowledged,
    MessageReceived,
    MessageRejected,
    MessageThreaded,
    ReplySent,
    TicketClosed,
    TicketMerged,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    TicketSplit,
    decode,
)
from services.common.runtime import stop_if_cancelled

log = structlog.get_logger()
TABLES = ("tickets", "messages", "rejected", "events")
_json = msgspec.json.Encoder()
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class CheckpointMoved(Exception):
    """Someone reset the checkpoint (a replay); restart reading from it."""


async def apply(conn: Conn, seq: int, env: Envelope) -> None:
    """Apply one event to the projection tables (inside the caller's transaction)."""
    t = env.time
    match env.data:
        case MessageReceived() as e:
            await conn.execute(
                "INSERT INTO messages (message_id, digest, mailbox, sender, subject, received_at,"
                " body, reply, auto) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"
                " ON CONFLICT (message_id) DO NOTHING",
                e.message_id, e.digest, e.mailbox, e.sender, e.subject, t, e.text, e.reply,
                e.auto,
            )
            return
        case MessageRejected() as e:
            await conn.execute(
                "INSERT INTO rejected VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                e.digest, e.reason, e.mailbox, e.size, t,
            )
            return
        case TicketOpened() as e:
            await conn.execute(
                "INSERT INTO tickets (id, number, status, subject, requester, mailbox, split_from,"
                " opened_at, updated_at) VALUES ($1,$2,'open',$3,$4,$5,$6,$7,$7)",
                e.ticket_id, e.number, e.subject, e.requester, e.mailbox, e.split_from, t,
            )
        case MessageThreaded() as e:
            await conn.execute(
                "UPDATE messages SET ticket_id = $2, threaded_by = $3 WHERE message_id = $1",
                e.message_id, e.ticket_id, e.method,
            )
            await conn.execute(
                "UPDATE tickets SET message_count = message_count + 1 WHERE id = $1", e.ticket_id
            )
        case TicketReopened() | FollowupAcknowledged() | TicketSplit() as e:
            verdict = {TicketReopened: "reopen", FollowupAcknowledged: "acknowledge",
                       TicketSplit: "split"}[type(e)]
            await conn.execute(
                "UPDATE messages SET decision = $2 WHERE message_id = $1", e.message_id, verdict
            )
            if isinstance(e, TicketReopened):
                await conn.execute("UPDATE tickets SET status = 'open' WHERE id = $1", e.ticket_id)
        case TicketSolved() as e:
            await conn.execute("UPDATE tickets SET status = 'solved' WHERE id = $1", e.ticket_id)
        case ReplySent() as e:
            await conn.execute(
                "INSERT INTO messages (message_id, digest, ticket_id, mailbox, sender, subject,"
                " received_at, body, reply, threaded_by) VALUES ($1,'',$2,$3,$3,$4,$5,$6,$6,"
                "'reply.sent') ON CONFLICT (message_id) DO NOTHING",
                e.message_id, e.ticket_id, e.sender, e.subject, t, e.text,
            )
            await conn.execute(
                "UPDATE tickets SET message_count = message_count + 1 WHERE id = $1", e.ticket_id
            )
        case TicketMerged() as e:
            moved = await conn.execute(
                "UPDATE messages SET ticket_id = $2 WHERE ticket_id = $1", e.ticket_id, e.into
            )
            count = int(moved.split()[-1])
            await conn.execute("UPDATE tickets SET status = 'merged', message_count = 0 "
                               "WHERE id = $1", e.ticket_id)
            await conn.execute("UPDATE tickets SET message_count = message_count + $2, "
                               "updated_at = $3 WHERE id = $1", e.into, count, t)
        case TicketClosed() as e:
            await conn.execute("UPDATE tickets SET status = 'closed' WHERE id = $1", e.ticket_id)
    ticket_id = env.data.ticket_id  # every remaining event belongs to a ticket
    await conn.execute("UPDATE tickets SET updated_at = $2 WHERE id = $1", ticket_id, t)
    await conn.execute(
        "INSERT INTO events VALUES ($1,$2,$3,$4,$5,$6::jsonb) ON CONFLICT DO NOTHING",
        seq, env.id, env.type, ticket_id, t, _json.encode(env).decode(),
    )


class Projector:
    """Reads the event stream from the stored checkpoint and applies it in batches."""

    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool, ns: str,
                 name: str = "queue", batch: int = 256) -> None:
        self.js, self.pool, self.ns, self.name, self.batch = js, pool, ns, name, batch
        self.stream = f"{ns.upper()}_EVENTS"

    async def checkpoint(self) -> int:
        value = await self.pool.fetchval("SELECT seq FROM checkpoints WHERE name = $1", self.name)
        return int(value or 0)

    async def reset(self) -> None:
        """Empty the projection and its checkpoint (the start of a replay)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
            await conn.execute(
                "INSERT INTO checkpoints VALUES ($1, 0) ON CONFLICT (name) DO UPDATE SET seq = 0",
                self.name,
            )

    async def _apply_batch(self, msgs: list[tuple[int, bytes]]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO checkpoints VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", self.name
            )
            done = int(await conn.fetchval(
                "SELECT seq FROM checkpoints WHERE name = $1 FOR UPDATE", self.name
            ))
            if msgs and msgs[0][0] > done + 1:
                raise CheckpointMoved(done)
            for seq, data in msgs:
                if seq <= done:
                    continue  # another projector instance got here first
                try:
                    env = decode(data)
                except msgspec.MsgspecError as exc:
                    log.error("event_undecodable", seq=seq, error=str(exc))
                    continue
                await apply(conn, seq, env)
                done = seq
            await conn.execute("UPDATE checkpoints SET seq = $2 WHERE name = $1", self.name, done)
            return done

    async def run(self, stop_at_end: bool = False) -> int:
        """Project until cancelled (or, with stop_at_end, until the stream's end)."""
        while True:
            start = await self.checkpoint() + 1
            end = (await self.js.stream_info(self.stream)).state.last_seq
            if stop_at_end and start > end:
                return start - 1
            sub = await self.js.pull_subscribe(
                "", stream=self.stream,
                config=api.ConsumerConfig(
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
                    ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0,
                ),
            )
            try:
                while True:
                    try:
                        msgs = await sub.fetch(self.batch, timeout=1.0)
                    except (TimeoutError, NatsTimeout):
                        stop_if_cancelled()
                        if stop_at_end:
                            break
                        continue
                    done = await self._apply_batch(
                        [(m.metadata.sequence.stream, m.data) for m in msgs]
                    )
                    if stop_at_end and done >= end:
                        return done
            except CheckpointMoved as moved:
                log.info("projection_restart", checkpoint=int(str(moved.args[0])))
            finally:
                await sub.unsubscribe()
