"""HTTP routes of the helpdesk read side: stats, customer context, tag and assign commands,
a live feed of events, and the web page at `/` (issue 13).

The page is static (services/queue/page/) and talks only to the documented API. A token
passed once as `/?token=` is checked, moved into an HttpOnly SameSite=Strict cookie and
dropped from the URL by a redirect (as Jupyter does); the guard in api.py accepts that cookie
for same-origin requests only.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from tidydesk.desk import config as desk_config
from tidydesk.desk.hours import Hours, business_seconds, hours_for, load_config
from tidydesk.queue.api import (
    COOKIE,
    IDEM,
    IF_MATCH,
    POOL,
    STORE,
    TICKET_PATH,
    TOKENS,
    EventList,
    EventRecord,
    _command,
    _execute,
    _idempotency_key,
    _if_match,
    _json,
    _p,
    _principal,
    _ticket_row,
    _version,
    bad,
)
from tidydesk.queue.openapi import Op
from tidydesk.queue.problems import ProblemError
from tidydesk.tickets.commands import Assign, Tag, Untag

PAGE = Path(__file__).resolve().parent / "page"  # package data
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
TAG = re.compile(r"[^\W_][\w .:/+-]{0,62}")  # letters of any script, digits, a few marks
MAX_DAYS = 366
TRENDING = 10
COUNTED = {  # CloudEvents type -> the count it feeds
    "tidydesk.ticket.opened": "opened",
    "tidydesk.ticket.solved": "solved",
    "tidydesk.ticket.reopened": "reopened",
    "tidydesk.followup.acknowledged": "acknowledged",
    "tidydesk.ticket.split": "split",
    "tidydesk.ticket.merged": "merged",
}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
            " img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
OWN_TENANT = "lower(substring(t.mailbox from '[^@]*$'))"


# --- response and request shapes ---

class Counts(msgspec.Struct, kw_only=True):
    """Events in the period: tickets opened and solved, follow-ups that reopened a ticket or
    were acknowledged (a thank-you: no reopen), splits and merges."""

    opened: int = 0
    solved: int = 0
    reopened: int = 0
    acknowledged: int = 0
    split: int = 0
    merged: int = 0


class Day(Counts, kw_only=True):
    day: date


class Percentiles(msgspec.Struct, kw_only=True):
    """Seconds; `count` tickets measured, p50/p90 null when none."""

    count: int
    p50: float | None
    p90: float | None


class Times(msgspec.Struct, kw_only=True):
    """Wall seconds, and business seconds over the tickets whose mailbox has hours
    (`business` null when none of them has)."""

    wall: Percentiles
    business: Percentiles | None


class TagTrend(msgspec.Struct, kw_only=True):
    tag: str
    this_week: int
    last_week: int
    change: int


class Stats(msgspec.Struct, kw_only=True):
    """What the desk did from `since` to `until` (UTC days, both included). `reopen_rate` =
    reopened / solved; times are of the tickets opened in the period; `rising` compares the
    tags of the 7 days ending at `until` with the 7 days before."""

    since: date
    until: date
    mailbox: str | None
    totals: Counts
    reopen_rate: float | None
    per_day: list[Day]
    by_tag: dict[str, Counts]
    by_language: dict[str, Counts]
    first_response: Times
    resolution: Times
    kudos: dict[str, int]
    rising: list[TagTrend]


class CustomerTicket(msgspec.Struct, kw_only=True):
    id: str
    number: int
    status: str
    subject: str
    mailbox: str
    assignee: str | None
    language: str | None
    opened_at: datetime
    updated_at: datetime
    tags: list[str]
    last_decision: str | None


class Customer(msgspec.Struct, kw_only=True):
    """A requester's history: newest tickets first (at most 100), decisions on their mails."""

    address: str
    tickets: list[CustomerTicket]
    last_contact: datetime | None
    languages: list[str]
    tags: dict[str, int]
    decisions: dict[str, int]


class TagBody(msgspec.Struct, forbid_unknown_fields=True):
    tag: str
    agent: str = ""


class AgentBody(msgspec.Struct, forbid_unknown_fields=True):
    agent: str = ""


class AssignBody(msgspec.Struct, forbid_unknown_fields=True):
    agent: str
    team: str | None = None
    by: str = ""  # the agent who decided, recorded as `agent:<by>`


class TagResult(msgspec.Struct, kw_only=True):
    id: str
    tag: str
    tags: list[str]
    changed: bool


class AssignResult(msgspec.Struct, kw_only=True):
    id: str
    assignee: str
    changed: bool


# --- helpers ---

def _day(name: str, value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise bad(f"{name} must be a date YYYY-MM-DD, got {value[:40]!r}") from None
    if not 1970 <= day.year <= 9000:
        raise bad(f"{name} must be a date from 1970 to 9000, got {day}")
    return day


def _period(q: Any) -> tuple[date, date]:
    until = _day("until", q["until"]) if "until" in q else datetime.now(UTC).date()
    since = _day("since", q["since"]) if "since" in q else until - timedelta(days=29)
    if since > until:
        raise bad(f"since {since} is after until {until}")
    if (until - since).days >= MAX_DAYS:
        raise bad(f"a period is at most {MAX_DAYS} days; got {(until - since).days + 1}")
    return since, until


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def percentiles(values: Iterable[float]) -> Percentiles:
    """Nearest-rank p50 and p90."""
    ordered = sorted(values)
    if not ordered:
        return Percentiles(count=0, p50=None, p90=None)

    def rank(p: int) -> float:
        return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]

    return Percentiles(count=len(ordered), p50=rank(50), p90=rank(90))


@functools.lru_cache(maxsize=200_000)
def _business(hours: Hours, start: datetime, end: datetime) -> float:
    """business_seconds, remembered: a ticket's pair of times is asked for by every /stats
    call (the page refreshes it) and costs some 60 µs to work out."""
    return business_seconds(hours, start, end)


def _times(rows: list[tuple[Hours | None, datetime, datetime]]) -> Times:
    wall = [(b - a).total_seconds() for _, a, b in rows]
    business = [_business(h, a, b) for h, a, b in rows if h is not None]
    return Times(wall=percentiles(wall), business=percentiles(business) if business else None)


class _Filter:
    """SQL conditions on tickets `t` for the caller's tenant and the `mailbox` parameter."""

    def __init__(self, request: web.Request, *args: Any) -> None:
        self.args: list[Any] = list(args)
        self.sql = ""
        if own := _principal(request).tenant:
            self.add(f"{OWN_TENANT} = ?", own)
        if "mailbox" in request.query:
            self.add("lower(t.mailbox) = ?", request.query["mailbox"].lower())

    def add(self, clause: str, value: Any) -> None:
        self.args.append(value)
        self.sql += " AND " + clause.replace("?", f"${len(self.args)}")


# --- queries ---

async def stats(request: web.Request) -> web.Response:
    since, until = _period(request.query)
    start, end = _start(since), _start(until + timedelta(days=1))
    pool = request.app[POOL]
    f = _Filter(request, start, end, list(COUNTED))
    events = await pool.fetch(
        "SELECT e.type, (e.time AT TIME ZONE 'UTC')::date AS day,"
        " coalesce(t.language, 'other') AS language, count(*) AS n"
        " FROM events e JOIN tickets t ON t.id = e.ticket_id"
        f" WHERE e.time >= $1 AND e.time < $2 AND e.type = ANY($3::text[]){f.sql}"
        " GROUP BY 1, 2, 3", *f.args)
    tagged = await pool.fetch(
        "SELECT e.type, g.tag, count(*) AS n FROM events e JOIN tickets t ON t.id = e.ticket_id"
        " JOIN ticket_tags g ON g.ticket_id = e.ticket_id"
        f" WHERE e.time >= $1 AND e.time < $2 AND e.type = ANY($3::text[]){f.sql}"
        " GROUP BY 1, 2", *f.args)
    totals = Counts()
    days = {since + timedelta(days=i): Day(day=since + timedelta(days=i))
            for i in range((until - since).days + 1)}
    by_language: dict[str, Counts] = defaultdict(Counts)
    by_tag: dict[str, Counts] = defaultdict(Counts)
    for r in events:
        field = COUNTED[r["type"]]
        for counts in (totals, days[r["day"]], by_language[r["language"]]):
            setattr(counts, field, getattr(counts, field) + r["n"])
    for r in tagged:
        field = COUNTED[r["type"]]
        setattr(by_tag[r["tag"]], field, getattr(by_tag[r["tag"]], field) + r["n"])

    f = _Filter(request, start, end)
    tickets = await pool.fetch(
        "SELECT t.mailbox, t.opened_at, t.first_response_at, t.solved_at FROM tickets t"
        f" WHERE t.opened_at >= $1 AND t.opened_at < $2 AND t.status <> 'merged'{f.sql}",
        *f.args)
    config = await load_config(request.app[STORE].js, request.app[STORE].ns)
    hours = {m: hours_for(config, m) for m in {r["mailbox"] for r in tickets}}
    first = [(hours[r["mailbox"]], r["opened_at"], r["first_response_at"]) for r in tickets
             if r["first_response_at"] is not None]
    solved = [(hours[r["mailbox"]], r["opened_at"], r["solved_at"]) for r in tickets
              if r["solved_at"] is not None]

    f = _Filter(request, start, end)
    kudos = await pool.fetch(
        "SELECT e.data->'data'->>'agent' AS agent, count(*) AS n FROM events e"
        " JOIN tickets t ON t.id = e.ticket_id WHERE e.type = 'tidydesk.agent.thanked'"
        f" AND e.time >= $1 AND e.time < $2{f.sql} GROUP BY 1 ORDER BY 2 DESC, 1", *f.args)
    f = _Filter(request, end - timedelta(days=14), end - timedelta(days=7), end)
    weeks = await pool.fetch(
        "SELECT g.tag, count(*) FILTER (WHERE g.tagged_at >= $2) AS this_week,"
        " count(*) FILTER (WHERE g.tagged_at < $2) AS last_week"
        " FROM ticket_tags g JOIN tickets t ON t.id = g.ticket_id"
        f" WHERE g.tagged_at >= $1 AND g.tagged_at < $3{f.sql} GROUP BY 1", *f.args)
    rising = sorted((TagTrend(tag=r["tag"], this_week=r["this_week"], last_week=r["last_week"],
                              change=r["this_week"] - r["last_week"])
                     for r in weeks if r["this_week"] > r["last_week"]),
                    key=lambda t: (-t.change, t.tag))[:TRENDING]
    body = Stats(
        since=since, until=until, mailbox=request.query.get("mailbox"), totals=totals,
        reopen_rate=round(totals.reopened / totals.solved, 4) if totals.solved else None,
        per_day=list(days.values()), by_tag=dict(sorted(by_tag.items())),
        by_language=dict(sorted(by_language.items())),
        first_response=_times(first), resolution=_times(solved),
        kudos={r["agent"] or "": r["n"] for r in kudos}, rising=rising)
    return _json(body)


def _address(value: str) -> str:
    if len(value) > 320 or "@" not in value or not value.isprintable():
        raise bad(f"not an email address: {value[:80]!r}")
    return value.lower()


async def customer(request: web.Request) -> web.Response:
    address = _address(request.match_info["address"])
    own = _principal(request).tenant
    pool = request.app[POOL]
    rows = await pool.fetch(
        "SELECT t.id, t.number, t.status, t.subject, t.mailbox, t.assignee, t.language,"
        " t.opened_at, t.updated_at,"
        " ARRAY(SELECT tag FROM ticket_tags WHERE ticket_id = t.id ORDER BY tag) AS tags,"
        " (SELECT decision FROM messages m WHERE m.ticket_id = t.id AND m.decision IS NOT NULL"
        "  ORDER BY m.received_at DESC LIMIT 1) AS last_decision"
        f" FROM tickets t WHERE lower(t.requester) = $1 AND ($2 = '' OR {OWN_TENANT} = $2)"
        " ORDER BY t.opened_at DESC, t.number DESC LIMIT 100", address, own)
    mails = await pool.fetch(
        "SELECT max(received_at) AS last, decision, count(*) AS n FROM messages"
        " WHERE lower(sender) = $1 AND ($2 = '' OR tenant = $2) GROUP BY decision",
        address, own)
    if not rows and not mails:
        raise ProblemError(404, f"no customer {address!r}")
    tickets = [CustomerTicket(**dict(r)) for r in rows]
    lasts = [r["last"] for r in mails if r["last"] is not None]
    tags = Counter(tag for t in tickets for tag in t.tags)
    return _json(Customer(
        address=address, tickets=tickets, last_contact=max(lasts) if lasts else None,
        languages=sorted({t.language for t in tickets if t.language}),
        tags=dict(tags.most_common()),
        decisions={r["decision"]: r["n"] for r in mails if r["decision"]}))


async def feed(request: web.Request) -> web.Response:
    """Events after stream sequence `after` (else the last `limit`), oldest first: what the
    page's live tail polls."""
    q = request.query
    after = q.get("after", "0")
    limit = q.get("limit", "100")
    latest = "after" not in q
    if not after.isascii() or not after.isdecimal() or len(after) > 18:
        raise bad(f"after must be a stream sequence (an integer), got {after[:40]!r}")
    if not limit.isascii() or not limit.isdecimal() or not 1 <= int(limit) <= 1000:
        raise bad(f"limit must be an integer from 1 to 1000, got {limit[:40]!r}")
    f = _Filter(request, int(after))
    if "ticket" in q:
        f.add("e.ticket_id = ?", q["ticket"])
    rows = await request.app[POOL].fetch(
        "SELECT e.seq, e.data::text AS data FROM events e JOIN tickets t ON t.id = e.ticket_id"
        f" WHERE e.seq > $1{f.sql} ORDER BY e.seq {'DESC' if latest else ''}"
        f" LIMIT {int(limit)}", *f.args)
    rows = sorted(rows, key=lambda r: int(r["seq"]))
    events = [msgspec.json.decode(r["data"], type=EventRecord) for r in rows]
    for event, r in zip(events, rows, strict=True):
        event.seq = r["seq"]
    return _json(EventList(events=events))


# --- commands ---

def _tag(value: str) -> str:
    tag = value.strip()
    if not TAG.fullmatch(tag):
        raise bad(f"malformed tag {value[:80]!r}: 1-63 letters, digits, space or . : / + - _,"
                  " starting with a letter or digit")
    return tag


def _agent(value: str, required: bool = False) -> str:
    agent = value.strip()
    if len(agent) > 200 or (required and not agent):
        raise bad("agent must be a name of 1-200 characters" if required else
                  "agent is at most 200 characters")
    return agent


async def _tag_command(request: web.Request, tag: str, agent: str, add: bool) -> web.Response:
    row = await _ticket_row(request)
    accepted, _ = _if_match(request), _idempotency_key(request)  # idempotent by state
    cmd = Tag(tag=tag, agent=agent) if add else Untag(tag=tag, agent=agent)
    done = await _execute(request, row["id"], cmd, accepted)
    tags = set(done.ticket.tags)
    if done.changed:
        (tags.add if add else tags.discard)(tag)
    return _json(TagResult(id=row["id"], tag=tag, tags=sorted(tags), changed=done.changed),
                 202, await _version(request, row["id"]))


async def add_tag(request: web.Request) -> web.Response:
    cmd = await _command(request, TagBody)
    return await _tag_command(request, _tag(cmd.tag), _agent(cmd.agent), add=True)


async def remove_tag(request: web.Request) -> web.Response:
    cmd = await _command(request, AgentBody)
    return await _tag_command(request, _tag(request.match_info["tag"]), _agent(cmd.agent),
                              add=False)


async def assign(request: web.Request) -> web.Response:
    row = await _ticket_row(request)
    cmd = await _command(request, AssignBody)
    agent, by = _agent(cmd.agent, required=True).lower(), _agent(cmd.by)
    accepted, _ = _if_match(request), _idempotency_key(request)
    known = await desk_config.load(request.app[STORE].js, request.app[STORE].ns)
    if agent not in known.agents:
        raise bad(f"unknown agent {agent!r}: register it first (tidydesk agents add {agent} "
                  "--email …)")
    if cmd.team is not None and cmd.team not in known.teams:
        raise bad(f"unknown team {cmd.team!r} (tidydesk teams set …)")

    done = await _execute(request, row["id"], Assign(agent=agent, team=cmd.team, by=by),
                          accepted)
    return _json(AssignResult(id=row["id"], assignee=agent, changed=done.changed), 202,
                 await _version(request, row["id"]))


# --- the page ---

async def page(request: web.Request) -> web.StreamResponse:
    """The page; `?token=` signs in: checked, set as a cookie, dropped by a redirect."""
    if "token" in request.query:
        token = request.query["token"]
        if await request.app[TOKENS].find(token) is None:
            raise ProblemError(401, "unknown or revoked token")
        response = web.HTTPSeeOther(location="/")
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=request.secure)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        raise response
    return web.FileResponse(PAGE / "index.html", headers={
        "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": PAGE_CSP,
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.path.rpartition("/")[2]
    return web.FileResponse(PAGE / name, headers={
        "Content-Type": f"{ASSETS[name]}; charset=utf-8", "X-Content-Type-Options": "nosniff"})


# --- routes ---

DATE = {"type": "string", "format": "date"}
STATS_MAILBOX = _p("mailbox", {"type": "string", "maxLength": 320}, "only this mailbox")
ROUTES: list[Op] = [
    Op("GET", "/", page, "the web page (queue, timeline, stats, live tail); `?token=` signs "
       "in with a cookie", None, (_p("token", {"type": "string"}, "a token, once: moved into "
                                     "an HttpOnly cookie and dropped from the URL"),),
       response_media="text/html", errors=(401,)),
    *(Op("GET", f"/page/{name}", asset, f"the page's {name}", None, response_media=media)
      for name, media in ASSETS.items()),
    Op("GET", "/stats", stats, "counts per day, tag and language; response and resolution "
       "times; kudos; rising tags", "read", (
           _p("since", DATE, "first UTC day (default: 29 days before until)"),
           _p("until", DATE, "last UTC day, included (default: today)"),
           STATS_MAILBOX), response=Stats),
    Op("GET", "/customers/{address}", customer, "a requester's tickets, last contact, "
       "languages, tags and decisions", "read",
       (_p("address", {"type": "string", "maxLength": 320}, "the requester's address",
           "path"),), response=Customer, errors=(404,)),
    Op("GET", "/events", feed, "events after a stream sequence, oldest first (a live tail)",
       "read", (_p("after", {"type": "integer", "minimum": 0},
                         "stream sequence (default: the last `limit` events)"),
                _p("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                   "at most this many (default 100)"),
                _p("ticket", {"type": "string"}, "only this ticket id"),
                STATS_MAILBOX), response=EventList),
    Op("POST", "/tickets/{id}/tags", add_tag, "add a tag (idempotent)", "write",
       (TICKET_PATH, IF_MATCH, IDEM), TagBody, ok=202, response=TagResult, errors=(404, 412)),
    Op("DELETE", "/tickets/{id}/tags/{tag}", remove_tag, "remove a tag (idempotent)", "write",
       (TICKET_PATH, _p("tag", {"type": "string", "maxLength": 63}, "the tag", "path"),
        IF_MATCH, IDEM), AgentBody, ok=202, response=TagResult, errors=(404, 412)),
    Op("POST", "/tickets/{id}/assign", assign, "assign to an agent (idempotent)", "write",
       (TICKET_PATH, IF_MATCH, IDEM), AssignBody, ok=202, response=AssignResult,
       errors=(404, 412)),
]
