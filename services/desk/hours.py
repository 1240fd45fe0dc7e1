"""Business hours per mailbox: a time zone, a weekly schedule and holidays (pure, no I/O
apart from `load_hours`).

Kept in the `{ns}_config` bucket under `desk.hours` (`tidydesk hours …`), read per event, so a
change takes effect without a restart.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

KEY = "desk.hours"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_SEARCH_DAYS = 400  # a schedule with any open minute opens within a year, holidays aside

Span = tuple[int, int]  # minutes after local midnight, [start, end); end may be 1440


class Hours(msgspec.Struct, frozen=True, kw_only=True):
    """When a mailbox's team works; build with `make_hours` (it validates)."""

    tz: str
    weekly: tuple[tuple[Span, ...], ...]  # seven days, Monday first
    holidays: tuple[str, ...] = ()  # YYYY-MM-DD, in the mailbox's zone

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def describe(self) -> str:
        """The weekly schedule in the form `parse_weekly` reads."""
        groups: dict[tuple[Span, ...], list[str]] = {}
        for day, spans in zip(DAYS, self.weekly, strict=True):
            if spans:
                groups.setdefault(spans, []).append(day)
        return "; ".join(
            f"{','.join(days)} {','.join(f'{_hhmm(s)}-{_hhmm(e)}' for s, e in spans)}"
            for spans, days in groups.items())


class HoursConfig(msgspec.Struct, frozen=True, kw_only=True):
    mailboxes: dict[str, Hours] = {}  # support@acme.example (or acme.example) -> hours


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_days(spec: str) -> list[int]:
    """`"mon,wed-fri"` -> [0, 2, 3, 4]; a range may wrap the week (`fri-mon`)."""
    out: list[int] = []
    for part in spec.lower().split(","):
        first, dash, last = part.strip().partition("-")
        if first not in DAYS or (dash and last not in DAYS):
            raise ValueError(f"unknown day {part.strip()!r} (use mon tue wed thu fri sat sun, "
                             "or a range such as mon-fri)")
        a, b = DAYS.index(first), DAYS.index(last if dash else first)
        out.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
    return out


def _span(spec: str) -> Span:
    match = _RANGE.match(spec.strip())
    if not match:
        raise ValueError(f"time range {spec.strip()!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"time range {spec.strip()!r} has an impossible time")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"time range {spec.strip()!r} is empty or runs backwards "
                         "(split a range past midnight into two days)")
    return start, end


def parse_weekly(spec: str) -> tuple[tuple[Span, ...], ...]:
    """`"mon,tue,wed,thu,fri 09:00-18:00; sat 10:00-14:00"` -> seven days of spans.

    Raises ValueError on an unknown day, a malformed, empty or backwards range, overlapping
    ranges on one day, or a schedule with no open time at all.
    """
    week: list[list[Span]] = [[] for _ in DAYS]
    for group in (g.strip() for g in spec.split(";")):
        if not group:
            continue
        days, _, ranges = group.partition(" ")
        if not ranges.strip():
            raise ValueError(f"{group!r}: give days then ranges, e.g. 'mon-fri 09:00-18:00'")
        spans = [_span(r) for r in ranges.split(",")]
        for day in parse_days(days):
            week[day].extend(spans)
    for name, spans in zip(DAYS, week, strict=True):
        spans.sort()
        for (s1, e1), (s2, e2) in itertools.pairwise(spans):
            if s2 < e1:
                raise ValueError(f"{name}: {_hhmm(s1)}-{_hhmm(e1)} overlaps "
                                 f"{_hhmm(s2)}-{_hhmm(e2)}")
    if not any(week):
        raise ValueError(f"weekly schedule {spec!r} has no open hours")
    return tuple(tuple(spans) for spans in week)


def make_hours(tz: str, weekly: str, holidays: tuple[str, ...] | list[str] = ()) -> Hours:
    """Validated Hours; ValueError names what is wrong (unknown zone, bad range, bad date)."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (an IANA name such as Asia/Seoul)") from None
    days: set[str] = set()
    for holiday in holidays:
        try:
            days.add(date.fromisoformat(holiday).isoformat())
        except ValueError:
            raise ValueError(f"holiday {holiday!r} is not YYYY-MM-DD") from None
    return Hours(tz=tz, weekly=parse_weekly(weekly), holidays=tuple(sorted(days)))


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no zone; pass an aware one (UTC)")
    return at


def _open_spans(hours: Hours, day: date) -> tuple[Span, ...]:
    if day.isoformat() in hours.holidays:
        return ()
    return hours.weekly[day.weekday()]


def _intervals(hours: Hours, start: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """Open intervals (UTC) of the local days from `start`'s local day on, in order."""
    zone = hours.zone
    first = _aware(start).astimezone(zone).date()
    out: list[tuple[datetime, datetime]] = []
    for i in range(days):
        day = first + timedelta(days=i)
        midnight = datetime.combine(day, time(), tzinfo=zone)
        for s, e in _open_spans(hours, day):
            # wall-clock arithmetic in the zone, then UTC: DST days keep their local hours
            a = (midnight + timedelta(minutes=s)).astimezone(UTC)
            b = (datetime.combine(day + timedelta(days=1), time(), tzinfo=zone) if e == 1440
                 else midnight + timedelta(minutes=e)).astimezone(UTC)
            out.append((a, b))
    return out


def is_open(hours: Hours, at: datetime) -> bool:
    """Whether the team works at the instant `at` (aware)."""
    at = _aware(at)
    return any(a <= at < b for a, b in _intervals(hours, at - timedelta(days=1), 3))


def next_open(hours: Hours, at: datetime) -> datetime:
    """`at` if open then, else the next instant the team is back, in the mailbox's zone.

    Raises ValueError when nothing opens within a year (e.g. every day a holiday).
    """
    at = _aware(at)
    for a, b in _intervals(hours, at - timedelta(days=1), _SEARCH_DAYS):
        if b > at:
            return max(a, at).astimezone(hours.zone)
    raise ValueError("no open hours within a year")


def business_seconds(hours: Hours, start: datetime, end: datetime) -> float:
    """Seconds of open time between `start` and `end` (0 when end <= start)."""
    start, end = _aware(start), _aware(end)
    if end <= start:
        return 0.0
    days = (end - start).days + 3
    total = 0.0
    for a, b in _intervals(hours, start - timedelta(days=1), days):
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            total += (hi - lo).total_seconds()
    return total


def hours_for(config: HoursConfig, mailbox: str) -> Hours | None:
    """The mailbox's hours: its plain address (no +tag), else its domain."""
    local, _, domain = mailbox.lower().partition("@")
    plain = f"{local.split('+')[0]}@{domain}"
    return config.mailboxes.get(plain) or config.mailboxes.get(domain)


async def load_config(js: JetStreamContext, ns: str) -> HoursConfig:
    try:
        kv = await js.key_value(f"{ns}_config")
        entry = await kv.get(KEY)
    except (KeyNotFoundError, BucketNotFoundError):
        return HoursConfig()
    return msgspec.json.decode(entry.value or b"{}", type=HoursConfig)


async def load_hours(js: JetStreamContext, ns: str, mailbox: str) -> Hours | None:
    """The current hours of `mailbox` (None: always open, no notices, wall time only)."""
    return hours_for(await load_config(js, ns), mailbox)
