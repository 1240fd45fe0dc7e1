"""HTTP API: queue queries from the projection, commands as events, raw MIME intake.

aiohttp, not a new framework: it is already a dependency (webhooks, health), and one asyncio
server serves intake and the API next to the projector in the queue process. The OpenAPI
document (/openapi.json, /docs) is built from the same msgspec Structs the handlers use.

Access: a bearer token (tidydesk.queue.auth) on every route but /healthz, /readyz,
/openapi.json and /docs. A wrong scope is 403; a ticket or mail of another tenant is 404,
the same answer as a missing one, so a token cannot learn what other tenants have.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import msgspec
import structlog
from aiohttp import web
from yarl import URL

from tidydesk.common.events import MessageRejected
from tidydesk.common.settings import Settings
from tidydesk.common.store import (
    JetStreamEventStore,
    KvIndex,
    RawStore,
    digest_key,
)
from tidydesk.ingest.intake import Intake
from tidydesk.ingest.providers import _Postmark, postmark_mail
from tidydesk.queue.auth import Token, TokenStore
from tidydesk.queue.inbound import (
    PROVIDERS,
    MailgunForm,
    Providers,
    SendgridForm,
    SnsMessage,
    basic_credentials,
    check_basic,
    check_mailgun,
    check_sns,
    form_fields,
    mailgun_mail,
    missing_recipient,
    replay_claim,
    sendgrid_mail,
    ses_mail,
    sns_message,
)
from tidydesk.queue.openapi import Op, Param, docs_page, document
from tidydesk.queue.problems import ProblemError, problems
from tidydesk.tickets import commands
from tidydesk.tickets.commands import (
    AcceptHeld,
    Close,
    Command,
    Done,
    Merge,
    MoveHeld,
    NotHeld,
    Refused,
    Reply,
    Solve,
    TooLarge,
    Unmerge,
    VersionMismatch,
    holders,
)
from tidydesk.tickets.mailbox import tenant
from tidydesk.tickets.tokens import reply_address

log = structlog.get_logger()
POOL = web.AppKey("pool", asyncpg.Pool)
STORE = web.AppKey("store", JetStreamEventStore)
RAW = web.AppKey("raw", RawStore)
INTAKE = web.AppKey("intake", Intake)
SECRET = web.AppKey("secret", bytes)
INDEX = web.AppKey("index", KvIndex)
TOKENS = web.AppKey("tokens", TokenStore)
HOSTS = web.AppKey("hosts", frozenset)  # allowed Host values; empty = any
BODY_TIMEOUT = web.AppKey("body_timeout", float)
OPS = web.AppKey("ops", dict)
SPEC = web.AppKey("spec", bytes)
PRINCIPAL = web.RequestKey("principal", Token)
COOKIE = "tidydesk_token"  # the page's sign-in (tidydesk.queue.desk): a token, HttpOnly
KEEPALIVE_TIMEOUT = 15.0  # s: also bounds how long a client may take to send its headers
READ_TIMEOUT = 30.0  # s to receive a request body
MAX_LIMIT = 1000
TICKET_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # PostgreSQL text takes no NUL
STATUSES = ("open", "solved", "closed", "merged")
SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
TICKET_COLUMNS = (
    "id, number, status, subject, requester, mailbox, split_from, opened_at, updated_at,"
    " message_count, assignee,"
    " ARRAY(SELECT tag FROM ticket_tags WHERE ticket_id = tickets.id ORDER BY tag) AS tags"
)


# --- response and request shapes (the OpenAPI schemas are generated from these) ---

class TicketSummary(msgspec.Struct, kw_only=True):
    """A ticket as the queue lists it."""

    id: str
    number: int
    status: str
    subject: str
    requester: str
    mailbox: str
    split_from: str | None
    opened_at: datetime
    updated_at: datetime
    message_count: int
    assignee: str | None = None
    tags: list[str] = []


class TicketPage(msgspec.Struct, kw_only=True):
    """One page of tickets, oldest number first; `next` is the URL of the following page."""

    tickets: list[TicketSummary]
    next: str | None = None
    cursor: str | None = None


class Message(msgspec.Struct, kw_only=True):
    """One mail (or agent reply) of a ticket."""

    message_id: str
    sender: str
    subject: str
    received_at: datetime
    reply: str
    body: str
    auto: str | None
    threaded_by: str | None
    decision: str | None


class TicketDetail(TicketSummary, kw_only=True):
    """A ticket with its mails; `version` is also the ETag. `reply_to` needs `write`."""

    version: int
    messages: list[Message]
    reply_to: str | None = None


class EventRecord(msgspec.Struct, kw_only=True):
    """A ticket event as recorded (CloudEvents JSON) with its stream sequence."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]
    specversion: str = "1.0"
    datacontenttype: str = "application/json"
    seq: int = 0


class EventList(msgspec.Struct, kw_only=True):
    events: list[EventRecord]


class AutoMessage(msgspec.Struct, kw_only=True):
    """An auto-reply that threaded to no ticket (`message.auto_recorded`): kept, no ticket."""

    message_id: str
    sender: str
    subject: str
    mailbox: str
    auto: str
    received_at: datetime


class AutoMessagePage(msgspec.Struct, kw_only=True):
    """One page of such mails, oldest first; `next` is the URL of the following page."""

    messages: list[AutoMessage]
    next: str | None = None
    cursor: str | None = None


class StatusBody(msgspec.Struct, forbid_unknown_fields=True):
    agent: str = ""


class MergeBody(msgspec.Struct, forbid_unknown_fields=True):
    into: str
    agent: str = ""


class MoveBody(msgspec.Struct, forbid_unknown_fields=True):
    """Where a held message goes: `into` a ticket (id or number), or `new` for its own."""

    into: str = ""
    new: bool = False
    agent: str = ""


class HeldMessage(msgspec.Struct, kw_only=True):
    """A message kept aside for an agent: it named the ticket, its sender is not known."""

    message_id: str
    sender: str
    subject: str
    reply: str
    method: str
    reason: str
    ticket: str = ""  # where it is held: this ticket, or one merged into it


class HeldList(msgspec.Struct, kw_only=True):
    held: list[HeldMessage]


class HeldResult(msgspec.Struct, kw_only=True):
    message_id: str
    ticket: str  # the ticket it is in now
    changed: bool


class ReplyBody(msgspec.Struct, forbid_unknown_fields=True):
    text: str
    agent: str = ""
    idempotency_key: str = ""  # or the Idempotency-Key header: a retry sends one reply


class StatusResult(msgspec.Struct, kw_only=True):
    id: str
    status: str
    changed: bool


class MergeResult(msgspec.Struct, kw_only=True):
    id: str
    into: str
    changed: bool


class ReplyResult(msgspec.Struct, kw_only=True):
    message_id: str
    reply_to: str


class IntakeResult(msgspec.Struct, kw_only=True):
    message_id: str
    digest: str
    duplicate: bool


class Health(msgspec.Struct, kw_only=True):
    status: str


# --- helpers ---

def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None
          ) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, headers=headers,
                        content_type="application/json")


def bad(detail: str) -> ProblemError:
    return ProblemError(400, detail)


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, f"no {what}")


def _principal(request: web.Request) -> Token:
    return request[PRINCIPAL]


def _ticket_key(key: str) -> str:
    """A path's ticket id or number, or 400: ASCII letters, digits, `-`, `_` only."""
    if not TICKET_ID.fullmatch(key):
        raise bad(f"malformed ticket id {key[:80]!r}: letters, digits, - and _ only")
    return key


async def _find(request: web.Request, key: str) -> asyncpg.Record:
    """A ticket by id or human number, if the caller's tenant may see it; else 404."""
    pool = request.app[POOL]
    sql = f"SELECT {TICKET_COLUMNS} FROM tickets WHERE "
    row: asyncpg.Record | None = await pool.fetchrow(sql + "id = $1", _ticket_key(key))
    if row is None and key.isascii() and key.isdigit() and len(key) < 19:
        row = await pool.fetchrow(sql + "number = $1", int(key))
    if row is None or not _principal(request).sees(tenant(row["mailbox"])):
        raise _not_found(f"ticket {key!r}")
    return row


async def _ticket_row(request: web.Request) -> asyncpg.Record:
    return await _find(request, request.match_info["id"])


async def _body(request: web.Request) -> bytes:
    """The request body within READ_TIMEOUT (408 otherwise), at most client_max_size (413)."""
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            return await request.read()
    except TimeoutError:
        raise ProblemError(408, "the request body did not arrive in time",
                           {"Connection": "close"}) from None


T = TypeVar("T")


async def _command(request: web.Request, kind: type[T]) -> T:
    """The JSON body as a command Struct; a 400 with the decoder's reason otherwise."""
    try:
        cmd = msgspec.json.decode(await _body(request) or b"{}", type=kind)
    except msgspec.MsgspecError as exc:
        raise bad(f"malformed JSON body: {exc}") from exc
    for field in msgspec.structs.fields(cmd):  # type: ignore[arg-type]
        value = getattr(cmd, field.name)
        if isinstance(value, str) and CONTROL.search(value):
            raise bad(f"{field.name} must not hold NUL or other control characters")
    return cmd


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match(request: web.Request) -> set[int] | None:
    """Versions If-Match accepts; None = any (absent or `*`). Weak tags never match."""
    value = request.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    tags = [t.strip() for t in value.split(",")]
    if not all(re.fullmatch(r'(W/)?"[^"]*"', t) for t in tags):
        raise bad('malformed If-Match: give the ETag as sent, e.g. If-Match: "42"')
    return {int(t[1:-1]) for t in tags if t.startswith('"') and t[1:-1].isdecimal()
            and len(t) < 21}


def _idempotency_key(request: web.Request, body_key: str = "") -> str:
    """The Idempotency-Key header (or the body's key; both must agree), "" if none."""
    header = request.headers.get("Idempotency-Key", "")
    for key in (header, body_key):
        if key and (len(key) > 200 or not key.isascii() or not key.isprintable()):
            raise bad("an idempotency key is 1-200 printable ASCII characters")
    if header and body_key and header != body_key:
        raise bad("Idempotency-Key header and body idempotency_key differ")
    return header or body_key


async def _version(request: web.Request, ticket_id: str) -> dict[str, str]:
    return {"ETag": _etag((await request.app[STORE].load(ticket_id)).version)}


# --- queries ---

def _limit(value: str) -> int:
    if not value.isascii() or not value.isdecimal() or not 1 <= int(value) <= MAX_LIMIT:
        raise bad(f"limit must be an integer from 1 to {MAX_LIMIT}, got {value[:40]!r}")
    return int(value)


def _since(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise bad(f"updated_since must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got "
                  f"{value[:60]!r} (a + in a URL must be sent as %2B)") from None
    if when.tzinfo is None:
        raise bad("updated_since needs a time zone (Z or an offset)")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise bad("updated_since is out of range") from None


def _statuses(value: str) -> list[str] | None:
    wanted = [s.strip() for s in value.split(",")]
    if wanted == ["all"]:
        return None
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise bad(f"status must be all or a comma list of {', '.join(STATUSES)}; "
                  f"got {unknown[0][:40]!r}")
    return wanted


def cursor_of(number: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([number])).decode().rstrip("=")


def _after(value: str) -> int:
    try:
        (number,) = msgspec.json.decode(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)),
                                        type=tuple[int])
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise bad("malformed cursor: pass the `cursor` of the previous page as is") from None
    if not 0 <= number < 1 << 63:
        raise bad("malformed cursor: out of range")
    return number


async def list_tickets(request: web.Request) -> web.Response:
    """Keyset pages in ticket-number order: a ticket updated during a walk keeps its place,
    so a walk meets every ticket exactly once (a ticket opened meanwhile comes at the end)."""
    q = request.query
    limit = _limit(q.get("limit", "100"))
    clauses: list[str] = []
    args: list[Any] = []

    def where(clause: str, value: Any) -> None:
        args.append(value)
        clauses.append(clause.replace("?", f"${len(args)}"))

    statuses = _statuses(q.get("status", "open"))
    if statuses is not None:
        where("status = ANY(?::text[])", statuses)
    if "requester" in q:
        where("lower(requester) = ?", q["requester"].lower())
    if "mailbox" in q:
        where("lower(mailbox) = ?", q["mailbox"].lower())
    if "updated_since" in q:
        where("updated_at >= ?", _since(q["updated_since"]))
    if "tag" in q:
        where("id IN (SELECT ticket_id FROM ticket_tags WHERE tag = ?)", q["tag"].strip())
    if "assignee" in q:
        where("lower(assignee) = ?", q["assignee"].strip().lower())
    if own := _principal(request).tenant:
        where("lower(substring(mailbox from '[^@]*$')) = ?", own)
    if "cursor" in q:
        where("number > ?", _after(q["cursor"]))
    sql = f"SELECT {TICKET_COLUMNS} FROM tickets"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    rows = await request.app[POOL].fetch(f"{sql} ORDER BY number LIMIT {limit + 1}", *args)
    page = TicketPage(tickets=[TicketSummary(**dict(r)) for r in rows[:limit]])
    headers: dict[str, str] = {}
    if len(rows) > limit:
        page.cursor = cursor_of(page.tickets[-1].number)
        page.next = str(request.rel_url.update_query(cursor=page.cursor))
        headers["Link"] = f'<{page.next}>; rel="next"'
    return _json(page, headers=headers)


async def get_ticket(request: web.Request) -> web.Response:
    row = await _ticket_row(request)
    messages = await request.app[POOL].fetch(
        "SELECT message_id, sender, subject, received_at, reply, body, auto, threaded_by,"
        " decision FROM messages WHERE ticket_id = $1 ORDER BY received_at", row["id"]
    )
    version = (await request.app[STORE].load(row["id"])).version
    detail = TicketDetail(**dict(row), version=version,
                          messages=[Message(**dict(m)) for m in messages])
    if _principal(request).allows("write"):
        detail.reply_to = reply_address(request.app[SECRET], row["id"], row["mailbox"])
    return _json(detail, headers={"ETag": _etag(version)})


async def ticket_events(request: web.Request) -> web.Response:
    row = await _ticket_row(request)
    rows = await request.app[POOL].fetch(
        "SELECT seq, data::text AS data FROM events WHERE ticket_id = $1 ORDER BY seq", row["id"]
    )
    events = [msgspec.json.decode(r["data"], type=EventRecord) for r in rows]
    for event, r in zip(events, rows, strict=True):
        event.seq = r["seq"]
    return _json(EventList(events=events))


async def raw_message(request: web.Request) -> web.Response:
    message_id = request.match_info["message_id"]
    if len(message_id) > 998 or not message_id.isprintable():
        raise bad("malformed message id")
    row = await request.app[POOL].fetchrow(
        "SELECT digest, mailbox FROM messages WHERE message_id = $1", message_id)
    ok = row is not None and _principal(request).sees(tenant(row["mailbox"]))
    data = await request.app[RAW].get(row["digest"]) if row is not None and ok else None
    if data is None:
        raise _not_found(f"message {message_id!r}")
    return web.Response(body=data, content_type="message/rfc822")


async def list_messages(request: web.Request) -> web.Response:
    """The auto-replies recorded without a ticket, keyset pages by (received_at, tenant, id)."""
    q = request.query
    if q.get("auto") != "recorded":
        raise bad("auto=recorded is required: the mails that opened no ticket (auto-replies "
                  "that thread nowhere); a ticket's mails are in GET /tickets/{id}")
    limit = _limit(q.get("limit", "100"))
    args: list[Any] = []
    sql = ("SELECT message_id, sender, subject, mailbox, coalesce(auto, '') AS auto, "
           "received_at, tenant FROM messages WHERE threaded_by = 'auto' AND ticket_id IS NULL")
    if own := _principal(request).tenant:
        args.append(own)
        sql += f" AND tenant = ${len(args)}"
    if "cursor" in q:
        args.extend(_message_after(q["cursor"]))
        sql += f" AND (received_at, tenant, message_id) > (${len(args) - 2}, ${len(args) - 1}, " \
               f"${len(args)})"
    rows = await request.app[POOL].fetch(
        f"{sql} ORDER BY received_at, tenant, message_id LIMIT {limit + 1}", *args)
    page = AutoMessagePage(messages=[AutoMessage(**{k: v for k, v in r.items() if k != "tenant"})
                                     for r in rows[:limit]])
    headers: dict[str, str] = {}
    if len(rows) > limit:
        last = rows[limit - 1]
        page.cursor = base64.urlsafe_b64encode(msgspec.json.encode(
            [last["received_at"], last["tenant"], last["message_id"]])).decode().rstrip("=")
        page.next = str(request.rel_url.update_query(cursor=page.cursor))
        headers["Link"] = f'<{page.next}>; rel="next"'
    return _json(page, headers=headers)


def _message_after(value: str) -> tuple[datetime, str, str]:
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)),
                                   type=tuple[datetime, str, str])
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise bad("malformed cursor: pass the `cursor` of the previous page as is") from None


# --- commands (tidydesk.tickets.commands: the routes decode them and map refusals) ---

@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A command's refusal as the problem it is over HTTP."""
    try:
        yield
    except VersionMismatch as exc:
        raise ProblemError(412, str(exc), {"ETag": _etag(exc.version)}) from None
    except Refused as exc:
        raise ProblemError(409, str(exc)) from None
    except TooLarge as exc:
        raise ProblemError(413, str(exc)) from None
    except NotHeld as exc:
        raise ProblemError(404, str(exc)) from None


async def _execute(request: web.Request, ticket_id: str, cmd: Command,
                   accepted: set[int] | None) -> Done:
    """Run the command, not cut short by a client that hangs up."""
    with _refusals():
        return await asyncio.shield(commands.execute(
            request.app[STORE], ticket_id, cmd, accepted, request.app[INDEX]))


async def _status_command(request: web.Request, target: str) -> web.Response:
    row = await _ticket_row(request)
    body = await _command(request, StatusBody)
    accepted, _ = _if_match(request), _idempotency_key(request)  # idempotent by state
    cmd = Solve(agent=body.agent) if target == "solved" else Close(agent=body.agent)
    done = await _execute(request, row["id"], cmd, accepted)
    return _json(StatusResult(id=row["id"], status=target, changed=done.changed), 202,
                 await _version(request, row["id"]))


async def solve(request: web.Request) -> web.Response:
    return await _status_command(request, "solved")


async def close(request: web.Request) -> web.Response:
    return await _status_command(request, "closed")


async def merge(request: web.Request) -> web.Response:
    """Merge this ticket into another (e.g. a `related` suggestion an agent accepts)."""
    row = await _ticket_row(request)
    cmd = await _command(request, MergeBody)
    accepted, _ = _if_match(request), _idempotency_key(request)
    into = await _find(request, cmd.into)
    if into["id"] == row["id"]:
        raise bad("a ticket merges into another ticket, not into itself")
    if tenant(into["mailbox"]) != tenant(row["mailbox"]):
        raise bad("tickets of different tenants never merge")
    done = await _execute(request, row["id"], Merge(into=into["id"], agent=cmd.agent),
                          accepted)
    return _json(MergeResult(id=row["id"], into=into["id"], changed=done.changed), 202,
                 await _version(request, row["id"]))


async def unmerge(request: web.Request) -> web.Response:
    """Undo an agent's merge: the ticket takes its own messages and its status back."""
    row = await _ticket_row(request)
    cmd = await _command(request, StatusBody)
    accepted, _ = _if_match(request), _idempotency_key(request)  # idempotent by state
    done = await _execute(request, row["id"], Unmerge(agent=cmd.agent), accepted)
    status = (await request.app[STORE].load(row["id"])).status
    return _json(StatusResult(id=row["id"], status=status, changed=done.changed), 202,
                 await _version(request, row["id"]))


def _held_id(request: web.Request) -> str:
    message_id = request.match_info["message_id"]
    if len(message_id) > 998 or not message_id.isprintable():
        raise bad("malformed message id")
    return message_id


async def list_held(request: web.Request) -> web.Response:
    row = await _ticket_row(request)
    held = await holders(request.app[STORE], await request.app[STORE].load(row["id"]))
    return _json(HeldList(held=[HeldMessage(
        message_id=h.message_id, sender=h.sender, subject=h.subject, reply=h.reply,
        method=h.method, reason=h.reason, ticket=t.ticket_id)
        for t in held for h in t.held.values()]))


async def accept_held(request: web.Request) -> web.Response:
    """The held message joins the conversation; its sender becomes a participant."""
    message_id = _held_id(request)
    cmd = await _command(request, StatusBody)
    accepted, _ = _if_match(request), _idempotency_key(request)
    row = await _ticket_row(request)
    done = await _execute(request, row["id"], AcceptHeld(message_id=message_id,
                                                         agent=cmd.agent), accepted)
    return _json(HeldResult(message_id=message_id, ticket=done.went or row["id"],
                            changed=done.changed), 202, await _version(request, row["id"]))


async def move_held(request: web.Request) -> web.Response:
    """The held message goes to another ticket of the tenant, or opens one of its own."""
    row = await _ticket_row(request)
    message_id = _held_id(request)
    cmd = await _command(request, MoveBody)
    accepted, _ = _if_match(request), _idempotency_key(request)
    if cmd.new == bool(cmd.into):
        raise bad('give either "into" (a ticket id or number) or "new": true')
    into = None
    if cmd.into:
        target = await _find(request, cmd.into)
        if tenant(target["mailbox"]) != tenant(row["mailbox"]):
            raise bad("a held message moves only to a ticket of its own tenant")
        into = str(target["id"])
    done = await _execute(request, row["id"], MoveHeld(message_id=message_id, into=into,
                                                       agent=cmd.agent), accepted)
    return _json(HeldResult(message_id=message_id, ticket=done.went, changed=True), 202,
                 await _version(request, row["id"]))


async def reply(request: web.Request) -> web.Response:
    """An agent's answer: recorded as reply.sent, mailed by notify with the reply token."""
    row = await _ticket_row(request)
    cmd = await _command(request, ReplyBody)
    if not cmd.text.strip():
        raise bad("text must not be empty")
    accepted = _if_match(request)
    key = _idempotency_key(request, cmd.idempotency_key) or uuid.uuid4().hex
    domain = tenant(row["mailbox"]) or "tidydesk.invalid"
    message_id = f"{digest_key(row['id'] + key)[:32]}@{domain}"
    reply_to = reply_address(request.app[SECRET], row["id"], row["mailbox"])
    await _execute(request, row["id"], Reply(message_id=message_id, text=cmd.text,
                                             reply_to=reply_to, agent=cmd.agent), accepted)
    return _json(ReplyResult(message_id=message_id, reply_to=reply_to), 202,
                 await _version(request, row["id"]))


# --- intake ---

def _intake_mailboxes(request: web.Request, recipients: Iterable[str] = ()) -> list[str]:
    """The tenant mailboxes: `?mailbox=`, else the provider's envelope recipients. A
    tenant's intake token must name mailboxes of its tenant only."""
    query = request.query.get("mailbox", "")
    mailboxes = [query] if query else [r.strip() for r in recipients if r.strip()]
    principal = request.get(PRINCIPAL)
    owner = principal.tenant if principal else ""
    for mailbox in mailboxes or [""]:
        if len(mailbox) > 320 or (mailbox and "@" not in mailbox):
            raise bad("mailbox must be an email address")
        if owner and tenant(mailbox) != owner:
            raise ProblemError(403, f"this token takes mail for mailboxes @{owner} only: "
                               "pass ?mailbox=<address>")
    return mailboxes


async def inbound_mime(request: web.Request) -> web.Response:
    mailboxes = _intake_mailboxes(request)
    raw = await _body(request)
    if not raw:
        raise bad("empty body: POST the raw RFC 5322 message bytes")
    return await _accept(request, raw, mailboxes)


async def _accept(request: web.Request, raw: bytes, mailboxes: list[str]) -> web.Response:
    """Intake for each tenant among `mailboxes`; without one, the To header decides (and
    a mail whose To names no address is a 400: it has no tenant)."""
    if not mailboxes and missing_recipient(raw):
        raise bad("no tenant mailbox: no ?mailbox=, no provider recipient and the To header "
                  "names no address (pass ?mailbox=<address>)")
    results = await asyncio.shield(request.app[INTAKE].deliver(
        raw, mailboxes or [""], traceparent=request.headers.get("traceparent")))
    event, new = results[0]
    if isinstance(event, MessageRejected):
        raise ProblemError(422, f"rejected: {event.reason}", digest=event.digest)
    return _json(IntakeResult(message_id=event.message_id, digest=event.digest,
                              duplicate=not any(n for _, n in results)), 202 if new else 200)


async def _provider_auth(request: web.Request, allowed: frozenset[str], setting: str) -> None:
    """A bearer token with the intake scope, or the provider's Basic credentials."""
    token = _bearer(request)
    if token:
        principal = await request.app[TOKENS].find(token)
        if principal is None:
            raise _unauthorized("unknown or revoked token", "invalid_token")
        if not principal.allows("intake"):
            raise ProblemError(403, "this needs a token with scope 'intake' (or admin)")
        request[PRINCIPAL] = principal
        return
    credentials = basic_credentials(request)
    if credentials is None:
        raise ProblemError(401, f"send the Basic credentials of {setting} (user:password@ "
                           "in the webhook URL) or Authorization: Bearer <intake token>",
                           {"WWW-Authenticate": 'Basic realm="tidydesk inbound"'})
    check_basic(credentials, allowed, setting)


async def inbound_postmark(request: web.Request) -> web.Response:
    """Postmark's inbound webhook JSON, turned into MIME so it takes the one intake path."""
    await _provider_auth(request, request.app[PROVIDERS].postmark_auth,
                         "TIDYDESK_POSTMARK_AUTH")
    try:
        raw, recipient = postmark_mail(await _body(request))
    except ValueError as exc:
        raise bad(str(exc)) from None
    return await _accept(request, raw, _intake_mailboxes(request, [recipient]))


async def inbound_sendgrid(request: web.Request) -> web.Response:
    """SendGrid Inbound Parse with 'POST the raw, full MIME message' on; the tenant is
    ?mailbox= else the envelope's `to`."""
    await _provider_auth(request, request.app[PROVIDERS].sendgrid_auth,
                         "TIDYDESK_SENDGRID_AUTH")
    fields = form_fields(await _body(request), request.headers.get("Content-Type", ""))
    raw, recipients = sendgrid_mail(fields)
    return await _accept(request, raw, _intake_mailboxes(request, recipients))


async def inbound_mailgun(request: web.Request) -> web.Response:
    """A Mailgun route forwarded to this URL: the signature replaces the bearer token."""
    fields = form_fields(await _body(request), request.headers.get("Content-Type", ""))
    check_mailgun(fields, request.app[PROVIDERS].mailgun_signing_key)
    raw, recipients = mailgun_mail(fields)
    key, value = replay_claim(fields, raw, recipients)
    if await request.app[INDEX].claim(key, value) != value:
        raise ProblemError(403, "replayed Mailgun token: it was signed for another mail or "
                           "recipient")
    return await _accept(request, raw, _intake_mailboxes(request, recipients))


async def inbound_ses(request: web.Request) -> web.Response:
    """Amazon SES receipts via an SNS HTTPS subscription: the SNS signature replaces the
    bearer token. A SubscriptionConfirmation is logged for the operator (204)."""
    msg = sns_message(await _body(request))
    await check_sns(msg, request.app[PROVIDERS])
    if msg.Type != "Notification":
        log.warning("sns_confirmation_needed", type=msg.Type, topic=msg.TopicArn,
                    subscribe_url=msg.SubscribeURL,
                    hint="open SubscribeURL to confirm the subscription")
        return web.Response(status=204)
    raw, recipients = ses_mail(msg)
    return await _accept(request, raw, _intake_mailboxes(request, recipients))


# --- public ---

async def health(request: web.Request) -> web.Response:
    await request.app[POOL].fetchval("SELECT 1")
    return _json(Health(status="ok"))


async def ready(request: web.Request) -> web.Response:
    await request.app[POOL].fetchval("SELECT 1")
    if not request.app[STORE].js._nc.is_connected:
        raise ProblemError(503, "NATS is not connected")
    return _json(Health(status="ready"))


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SPEC], content_type="application/json")


async def docs(request: web.Request) -> web.Response:
    page = docs_page(json.loads(request.app[SPEC]))
    return web.Response(text=page, content_type="text/html", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


# --- the guard: Host, Origin, query parameters, token and scope ---

def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Is `host` (a Host header or host[:port]) allowed? An entry without a port takes any."""
    host = host.lower()
    bare = re.sub(r":\d+$", "", host)
    return any(a in ("*", host) or (a == bare and not re.search(r":\d+$", a))
               for a in allowed)


def _origin_allowed(origin: str, allowed: frozenset[str]) -> bool:
    url = URL(origin)
    if not url.is_absolute() or url.scheme not in ("http", "https") or not url.host:
        return False
    netloc = url.raw_host if url.explicit_port is None else f"{url.raw_host}:{url.port}"
    return not allowed or _host_allowed(str(netloc), allowed)


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _cookie(request: web.Request) -> str:
    """The page's sign-in cookie, for same-origin requests only: SameSite=Strict keeps it off
    cross-site ones already, and a POST or DELETE must name this very origin as well."""
    token = request.cookies.get(COOKIE, "")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return ""
    if request.method not in ("GET", "HEAD") and (
            URL(request.headers.get("Origin", "")).raw_authority or "") != request.host.lower():
        return ""
    return token


def _unauthorized(detail: str, error: str = "") -> ProblemError:
    challenge = 'Bearer realm="tidydesk"' + (f', error="{error}"' if error else "")
    return ProblemError(401, detail, {"WWW-Authenticate": challenge})


@web.middleware
async def guard(request: web.Request,
                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> web.StreamResponse:
    """Refuse what no handler should see: a foreign Host, a cross-site browser POST,
    unknown or NUL-bearing query parameters, a missing token or scope."""
    hosts = request.app[HOSTS]
    host = request.headers.get("Host", "")
    if hosts and not _host_allowed(host, hosts):
        raise ProblemError(421, f"this server does not answer for Host {host[:100]!r} "
                           "(see TIDYDESK_ALLOWED_HOSTS)")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("Origin")
        if origin is not None and not _origin_allowed(origin, hosts):
            raise ProblemError(403, f"cross-site request from Origin {origin[:100]!r} refused")
        browser = origin is not None or "Sec-Fetch-Site" in request.headers
        if request.headers.get("Sec-Fetch-Site", "") == "cross-site" or (
                browser and request.content_type in SIMPLE_TYPES):
            raise ProblemError(403, "a browser form or text/plain POST is refused (send "
                               "application/json or the raw mail as message/rfc822)")
    route = request.match_info.route
    op: Op | None = request.app[OPS].get(
        (route.method, route.resource.canonical if route.resource else ""))
    if op is None:  # 404/405 from the router
        return await handler(request)
    for name, value in request.query.items():
        if name not in op.query:
            allowed = ", ".join(sorted(op.query)) or "none"
            raise bad(f"unknown query parameter {name[:40]!r} (allowed: {allowed})")
        if "\0" in value or len(request.query.getall(name)) > 1:
            raise bad(f"query parameter {name!r} must be given once, without NUL bytes")
    if op.scope is None:
        return await handler(request)
    token = _bearer(request) or _cookie(request)
    if not token:
        raise _unauthorized("send Authorization: Bearer <token> (tidydesk tokens create)")
    principal = await request.app[TOKENS].find(token)
    if principal is None:
        raise _unauthorized("unknown or revoked token", "invalid_token")
    if not principal.allows(op.scope):
        raise ProblemError(403, f"this needs a token with scope {op.scope!r} (or admin)", {
            "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{op.scope}"'})
    request[PRINCIPAL] = principal
    response = await handler(request)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """TIDYDESK_ALLOWED_HOSTS, or the HTTP address plus localhost/127.0.0.1 on its port."""
    if settings.allowed_hosts.strip():
        return frozenset(h.strip().lower() for h in settings.allowed_hosts.split(",")
                         if h.strip())
    port = settings.http_port
    return frozenset(f"{h}:{port}" for h in (settings.http_host.lower(), "localhost",
                                             "127.0.0.1", "[::1]"))


# --- the route table: handlers and their documentation in one place ---

def _p(name: str, schema: dict[str, Any], text: str, where: str = "query") -> Param:
    return Param(name, schema, text, where)


TICKET_PATH = _p("id", {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"},
                 "ticket id or number", "path")
IF_MATCH = _p("If-Match", {"type": "string"}, 'the ETag of GET /tickets/{id}, e.g. "42"',
              "header")
IDEM = _p("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 200,
                              "pattern": "^[\\x20-\\x7e]+$"},
          "a retry with the same key has the effect once", "header")
MAILBOX_Q = _p("mailbox", {"type": "string", "maxLength": 320},
               "the receiving mailbox (else To); required for a tenant's token")
HELD_PATH = _p("message_id", {"type": "string", "minLength": 1, "maxLength": 998},
              "Message-ID of the held message, without <>", "path")
ETAG = _p("ETag", {"type": "string"}, "the ticket's event version", "header")
ROUTES: list[Op] = [
    Op("GET", "/healthz", health, "the API answers and PostgreSQL too", None,
       response=Health, errors=(503,)),
    Op("GET", "/readyz", ready, "PostgreSQL and NATS are reachable", None,
       response=Health, errors=(503,)),
    Op("GET", "/openapi.json", openapi_json, "this document", None),
    Op("GET", "/docs", docs, "an HTML reference of this document", None,
       response_media="text/html"),
    Op("GET", "/tickets", list_tickets, "list tickets (keyset pages by number)", "read", (
        _p("status", {"type": "string"}, "all or a comma list of " + ", ".join(STATUSES)
           + " (default open)"),
        _p("requester", {"type": "string"}, "requester address"),
        _p("mailbox", {"type": "string"}, "receiving mailbox"),
        _p("updated_since", {"type": "string", "format": "date-time"},
           "only tickets updated at or after this RFC 3339 time"),
        _p("tag", {"type": "string"}, "only tickets with this tag"),
        _p("assignee", {"type": "string"}, "only tickets assigned to this agent"),
        _p("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
           "page size (default 100)"),
        _p("cursor", {"type": "string"}, "`cursor` of the previous page"),
    ), response=TicketPage,
       response_headers=(_p("Link", {"type": "string"}, 'rel="next" page', "header"),)),
    Op("GET", "/tickets/{id}", get_ticket, "a ticket with its mails", "read", (TICKET_PATH,),
       response=TicketDetail, response_headers=(ETAG,), errors=(404,)),
    Op("GET", "/tickets/{id}/events", ticket_events, "the ticket's events", "read",
       (TICKET_PATH,), response=EventList, errors=(404,)),
    Op("POST", "/tickets/{id}/solve", solve, "mark solved (idempotent)", "write",
       (TICKET_PATH, IF_MATCH, IDEM), StatusBody, ok=202, response=StatusResult,
       response_headers=(ETAG,), errors=(404, 412)),
    Op("POST", "/tickets/{id}/close", close, "close (idempotent)", "write",
       (TICKET_PATH, IF_MATCH, IDEM), StatusBody, ok=202, response=StatusResult,
       response_headers=(ETAG,), errors=(404, 412)),
    Op("POST", "/tickets/{id}/merge", merge, "merge into another ticket (idempotent)", "write",
       (TICKET_PATH, IF_MATCH, IDEM), MergeBody, ok=202, response=MergeResult,
       response_headers=(ETAG,), errors=(404, 409, 412)),
    Op("POST", "/tickets/{id}/unmerge", unmerge, "undo a merge (idempotent)", "write",
       (TICKET_PATH, IF_MATCH, IDEM), StatusBody, ok=202, response=StatusResult,
       response_headers=(ETAG,), errors=(404, 409, 412)),
    Op("GET", "/tickets/{id}/held", list_held, "messages held for an agent", "read",
       (TICKET_PATH,), response=HeldList, errors=(404,)),
    Op("POST", "/tickets/{id}/held/{message_id}/accept", accept_held,
       "let a held message into the conversation", "write",
       (TICKET_PATH, HELD_PATH, IF_MATCH, IDEM), StatusBody, ok=202, response=HeldResult,
       response_headers=(ETAG,), errors=(404, 412)),
    Op("POST", "/tickets/{id}/held/{message_id}/move", move_held,
       "move a held message to another ticket or a new one", "write",
       (TICKET_PATH, HELD_PATH, IF_MATCH, IDEM), MoveBody, ok=202, response=HeldResult,
       response_headers=(ETAG,), errors=(404, 409, 412)),
    Op("POST", "/tickets/{id}/reply", reply, "answer the requester by mail", "write",
       (TICKET_PATH, IF_MATCH, IDEM), ReplyBody, ok=202, response=ReplyResult,
       response_headers=(ETAG,), errors=(404, 412)),
    Op("POST", "/inbound/mime", inbound_mime, "take one raw RFC 5322 mail", "intake",
       (MAILBOX_Q,), bytes, ("message/rfc822", "application/octet-stream"), ok=202,
       response=IntakeResult, errors=(422,)),
    Op("POST", "/inbound/postmark", inbound_postmark, "take a Postmark inbound webhook. Auth:"
       " Basic credentials of TIDYDESK_POSTMARK_AUTH (in the webhook URL) or a bearer token "
       "with scope intake; the tenant is ?mailbox= else OriginalRecipient",
       None, (MAILBOX_Q,), _Postmark, ok=202, response=IntakeResult,
       errors=(400, 401, 403, 422)),
    Op("POST", "/inbound/sendgrid", inbound_sendgrid, "take a SendGrid Inbound Parse post "
       "(raw MIME mode). Auth: Basic credentials of TIDYDESK_SENDGRID_AUTH (in the Parse URL) "
       "or a bearer token with scope intake; the tenant is ?mailbox= else envelope.to",
       None, (MAILBOX_Q,), SendgridForm, ("multipart/form-data",), ok=202,
       response=IntakeResult, errors=(400, 401, 403, 422)),
    Op("POST", "/inbound/mailgun/mime", inbound_mailgun, "take a Mailgun route forwarded "
       "to this URL (raw MIME as body-mime). Auth: HMAC-SHA256 signature with "
       "TIDYDESK_MAILGUN_SIGNING_KEY, timestamp within 5 min, token used once; the tenant is "
       "recipient (no ?mailbox=: the URL is not signed)", None, (), MailgunForm,
       ("multipart/form-data", "application/x-www-form-urlencoded"), ok=202,
       response=IntakeResult, errors=(400, 401, 403, 422)),
    Op("POST", "/inbound/ses", inbound_ses, "take an Amazon SES receipt from an SNS HTTPS "
       "subscription. Auth: the SNS signature (certificate on sns.<region>.amazonaws.com), "
       "topic in TIDYDESK_SES_TOPIC_ARNS; the tenant is receipt.recipients (no ?mailbox=: "
       "the URL is not signed); a SubscriptionConfirmation is answered 204 and its "
       "SubscribeURL logged", None, (), SnsMessage, ("application/json", "text/plain"), ok=202,
       response=IntakeResult, errors=(400, 401, 403, 422)),
    Op("GET", "/messages", list_messages, "auto-replies recorded without a ticket "
       "(message.auto_recorded), oldest first in keyset pages", "read", (
        _p("auto", {"type": "string", "enum": ["recorded"]}, "required: recorded"),
        _p("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
           "page size (default 100)"),
        _p("cursor", {"type": "string"}, "`cursor` of the previous page"),
    ), response=AutoMessagePage, errors=(400,),
       response_headers=(_p("Link", {"type": "string"}, 'rel="next" page', "header"),)),
    Op("GET", "/messages/{message_id}/raw", raw_message, "the raw bytes of a mail", "read",
       (_p("message_id", {"type": "string", "minLength": 1, "maxLength": 998},
           "Message-ID without <>", "path"),), response=bytes,
       response_media="message/rfc822", errors=(404,)),
]


def build(pool: asyncpg.Pool, store: JetStreamEventStore, raw: RawStore, intake: Intake,
          max_bytes: int, secret: bytes, index: KvIndex, *, tokens: TokenStore | None = None,
          hosts: frozenset[str] = frozenset(), body_timeout: float = READ_TIMEOUT,
          providers: Providers | None = None) -> web.Application:
    """The API app; `hosts` empty = any Host (app.py passes `allowed_hosts(settings)`)."""
    app = web.Application(middlewares=[problems, guard], client_max_size=max_bytes)
    app[POOL], app[STORE], app[RAW], app[INTAKE] = pool, store, raw, intake
    app[SECRET], app[INDEX] = secret, index
    app[TOKENS] = tokens or TokenStore(store.js, store.ns)
    app[HOSTS], app[BODY_TIMEOUT] = hosts, body_timeout
    app[PROVIDERS] = providers or Providers()
    from tidydesk.queue import desk  # here, not at the top: desk imports this module

    routes = [*ROUTES, *desk.ROUTES]
    app[OPS] = {(op.method, op.path): op for op in routes}
    app[SPEC] = msgspec.json.encode(document(routes, "tidydesk", "1"))
    for op in routes:
        app.router.add_route(op.method, op.path, op.handler)
    return app


def runner(app: web.Application, keepalive_timeout: float = KEEPALIVE_TIMEOUT
           ) -> web.AppRunner:
    """The server settings: a handler stops when its client leaves; an idle or slow-header
    connection is closed after `keepalive_timeout`."""
    return web.AppRunner(app, access_log=None, handler_cancellation=True,
                         keepalive_timeout=keepalive_timeout)
