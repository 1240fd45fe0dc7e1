"""HTTP API: queue queries from the projection, commands as events, raw MIME intake."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import msgspec
import structlog
from aiohttp import web

from services.common.events import (
    Event,
    MessageRejected,
    ReplySent,
    TicketClosed,
    TicketMerged,
    TicketSolved,
)
from services.common.store import (
    JetStreamEventStore,
    KvIndex,
    RawStore,
    digest_key,
    link,
    tenant,
)
from services.common.ticket import Ticket
from services.ingest.intake import Intake
from services.ingest.providers import postmark_to_mime
from services.threading.engine import reply_address

log = structlog.get_logger()
POOL = web.AppKey("pool", asyncpg.Pool)
STORE = web.AppKey("store", JetStreamEventStore)
RAW = web.AppKey("raw", RawStore)
INTAKE = web.AppKey("intake", Intake)
SECRET = web.AppKey("secret", bytes)
INDEX = web.AppKey("index", KvIndex)
TICKET_COLUMNS = (
    "id, number, status, subject, requester, mailbox, split_from, opened_at, updated_at,"
    " message_count"
)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status,
                        content_type="application/json")


def error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


@web.middleware
async def errors(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """Every failure becomes a JSON `error`; never a traceback to the caller."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        log.error("api_backend_unavailable", path=request.path, error=str(exc))
        return error(503, "a backend (NATS or PostgreSQL) is unavailable; retry shortly")
    except Exception:
        log.exception("api_failed", path=request.path)
        return error(500, "internal error; see the service log")


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in record.items()}


async def _find(pool: asyncpg.Pool, key: str) -> asyncpg.Record:
    """A ticket by id or by its human number."""
    sql = f"SELECT {TICKET_COLUMNS} FROM tickets WHERE "
    row: asyncpg.Record | None = await pool.fetchrow(sql + "id = $1", key)
    if row is None and key.isdigit() and len(key) < 19:
        row = await pool.fetchrow(sql + "number = $1", int(key))
    if row is None:
        raise web.HTTPNotFound(reason=f"no ticket {key!r}")
    return row


async def _ticket_row(request: web.Request) -> asyncpg.Record:
    return await _find(request.app[POOL], request.match_info["id"])


async def list_tickets(request: web.Request) -> web.Response:
    status = request.query.get("status", "open")
    try:
        limit = min(int(request.query.get("limit", "100")), 1000)
    except ValueError:
        return error(400, "limit must be an integer")
    sql = f"SELECT {TICKET_COLUMNS} FROM tickets"
    args: list[Any] = []
    if status != "all":
        sql += " WHERE status = ANY($1::text[])"
        args.append(status.split(","))
    sql += f" ORDER BY updated_at DESC LIMIT {limit}"
    rows = await request.app[POOL].fetch(sql, *args)
    return _json({"tickets": [_row(r) for r in rows]})


async def get_ticket(request: web.Request) -> web.Response:
    row = await _ticket_row(request)
    messages = await request.app[POOL].fetch(
        "SELECT message_id, sender, subject, received_at, reply, body, auto, threaded_by,"
        " decision FROM messages WHERE ticket_id = $1 ORDER BY received_at", row["id"]
    )
    reply_to = reply_address(request.app[SECRET], row["id"], row["mailbox"])
    return _json({**_row(row), "reply_to": reply_to, "messages": [_row(m) for m in messages]})


async def ticket_events(request: web.Request) -> web.Response:
    row = await _ticket_row(request)
    rows = await request.app[POOL].fetch(
        "SELECT seq, data::text AS data FROM events WHERE ticket_id = $1 ORDER BY seq", row["id"]
    )
    return _json({"events": [{"seq": r["seq"], **json.loads(r["data"])} for r in rows]})


T = TypeVar("T")


async def _command(request: web.Request, kind: type[T]) -> T:
    """The JSON body as a command Struct; a 400 with the decoder's reason otherwise."""
    try:
        return msgspec.json.decode(await request.read() or b"{}", type=kind)
    except msgspec.MsgspecError as exc:
        raise web.HTTPBadRequest(reason=f"malformed JSON body: {exc}") from exc


class StatusBody(msgspec.Struct, forbid_unknown_fields=True):
    agent: str = ""


async def _status_command(request: web.Request, target: str) -> web.Response:
    row = await _ticket_row(request)
    cmd = await _command(request, StatusBody)

    def decide(ticket: Ticket) -> list[tuple[Event, str]]:
        if ticket.status == target or (target == "solved" and ticket.status == "closed"):
            return []  # already there: the command is idempotent
        event: Event = (TicketSolved if target == "solved" else TicketClosed)(
            ticket_id=ticket.ticket_id, agent=cmd.agent
        )
        return [(event, f"{target}@{ticket.version}")]

    events = await request.app[STORE].decide(row["id"], decide)
    return _json({"id": row["id"], "status": target, "changed": bool(events)}, 202)


async def solve(request: web.Request) -> web.Response:
    return await _status_command(request, "solved")


async def close(request: web.Request) -> web.Response:
    return await _status_command(request, "closed")


class MergeBody(msgspec.Struct, forbid_unknown_fields=True):
    into: str
    agent: str = ""


async def merge(request: web.Request) -> web.Response:
    """Merge this ticket into another (e.g. a `related` suggestion an agent accepts)."""
    row = await _ticket_row(request)
    cmd = await _command(request, MergeBody)
    into = await _find(request.app[POOL], cmd.into)
    if into["id"] == row["id"] or into["status"] == "merged":
        return error(400, "a ticket merges into another, unmerged ticket")

    def decide(ticket: Ticket) -> list[tuple[Event, str]]:
        if ticket.merged_into:
            return []
        return [(TicketMerged(ticket_id=ticket.ticket_id, into=into["id"], agent=cmd.agent),
                 f"merge:{into['id']}")]

    events = await request.app[STORE].decide(row["id"], decide)
    return _json({"id": row["id"], "into": into["id"], "changed": bool(events)}, 202)


class ReplyBody(msgspec.Struct, forbid_unknown_fields=True):
    text: str
    agent: str = ""
    idempotency_key: str = ""  # a retried request with the same key sends one reply


async def reply(request: web.Request) -> web.Response:
    """An agent's answer: recorded as reply.sent, mailed by notify with the reply token."""
    row = await _ticket_row(request)
    cmd = await _command(request, ReplyBody)
    if not cmd.text.strip():
        return error(400, "text must not be empty")
    domain = tenant(row["mailbox"]) or "tidydesk.invalid"
    key = cmd.idempotency_key or uuid.uuid4().hex
    message_id = f"{digest_key(row['id'] + key)[:32]}@{domain}"
    reply_to = reply_address(request.app[SECRET], row["id"], row["mailbox"])

    def decide(ticket: Ticket) -> list[tuple[Event, str]]:
        if ticket.has_message(message_id):
            return []
        history = [m.message_id for m in ticket.messages]
        subject = ticket.subject if f"[#{ticket.number}]" in ticket.subject else (
            f"[#{ticket.number}] {ticket.subject}")
        return [(ReplySent(
            ticket_id=ticket.ticket_id, message_id=message_id, agent=cmd.agent, text=cmd.text,
            sender=ticket.mailbox, to=ticket.requester, subject=f"Re: {subject}",
            reply_to=reply_to, in_reply_to=history[-1] if history else None,
            references=tuple(history[-20:]),
        ), message_id)]

    await request.app[STORE].decide(row["id"], decide)
    await request.app[INDEX].put(f"m:{message_id}", link(row["id"], row["mailbox"]))
    return _json({"message_id": message_id, "reply_to": reply_to}, 202)


async def inbound_mime(request: web.Request) -> web.Response:
    raw = await request.read()
    if not raw:
        return error(400, "empty body: POST the raw RFC 5322 message bytes")
    return await _accept(request, raw)


async def _accept(request: web.Request, raw: bytes) -> web.Response:
    event, new = await request.app[INTAKE].accept(raw, mailbox=request.query.get("mailbox", ""))
    if isinstance(event, MessageRejected):
        return _json({"error": f"rejected: {event.reason}", "digest": event.digest}, 422)
    return _json({"message_id": event.message_id, "digest": event.digest,
                  "duplicate": not new}, 202 if new else 200)


async def inbound_postmark(request: web.Request) -> web.Response:
    """Postmark's inbound webhook JSON, turned into MIME so it takes the one intake path."""
    try:
        raw = postmark_to_mime(await request.read())
    except ValueError as exc:
        return error(400, str(exc))
    return await _accept(request, raw)


async def raw_message(request: web.Request) -> web.Response:
    digest = await request.app[POOL].fetchval(
        "SELECT digest FROM messages WHERE message_id = $1", request.match_info["message_id"]
    )
    data = await request.app[RAW].get(digest) if digest else None
    if data is None:
        return error(404, f"no message {request.match_info['message_id']!r}")
    return web.Response(body=data, content_type="message/rfc822")


async def health(request: web.Request) -> web.Response:
    await request.app[POOL].fetchval("SELECT 1")
    return _json({"status": "ok"})


def build(pool: asyncpg.Pool, store: JetStreamEventStore, raw: RawStore, intake: Intake,
          max_bytes: int, secret: bytes, index: KvIndex) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=max_bytes)
    app[POOL], app[STORE], app[RAW], app[INTAKE] = pool, store, raw, intake
    app[SECRET], app[INDEX] = secret, index
    app.add_routes([
        web.get("/healthz", health),
        web.get("/tickets", list_tickets),
        web.get("/tickets/{id}", get_ticket),
        web.get("/tickets/{id}/events", ticket_events),
        web.post("/tickets/{id}/solve", solve),
        web.post("/tickets/{id}/close", close),
        web.post("/tickets/{id}/merge", merge),
        web.post("/tickets/{id}/reply", reply),
        web.post("/inbound/mime", inbound_mime),
        web.post("/inbound/postmark", inbound_postmark),
        web.get("/messages/{message_id}/raw", raw_message),
    ])
    return app
