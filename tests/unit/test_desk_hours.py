"""Business hours: parsing, validation and the time arithmetic (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidydesk.desk.hours import (
    HoursConfig,
    business_seconds,
    hours_for,
    is_open,
    make_hours,
    next_open,
    parse_weekly,
)

SEOUL = make_hours("Asia/Seoul", "mon,tue,wed,thu,fri 09:00-18:00; sat 10:00-14:00",
                   ["2026-12-25"])


def kst(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SEOUL.zone)


def test_parse_weekly_days_ranges_and_groups() -> None:
    week = parse_weekly("mon-fri 09:00-12:00,13:00-18:00; sat 10:00-14:00")
    assert week[0] == ((540, 720), (780, 1080))
    assert week[4] == week[0]
    assert week[5] == ((600, 840),)
    assert week[6] == ()
    assert parse_weekly("fri-mon 00:00-24:00")[6] == ((0, 1440),)  # ranges wrap the week


@pytest.mark.parametrize(("spec", "message"), [
    ("mon 09:00-18:00; mon 17:00-19:00", "overlaps"),
    ("mon 09:00-09:00", "empty"),
    ("mon 18:00-09:00", "backwards"),
    ("mon 9-18", "HH:MM-HH:MM"),
    ("funday 09:00-18:00", "unknown day"),
    ("mon 25:00-26:00", "impossible"),
    ("mon", "give days then ranges"),
    ("", "no open hours"),
])
def test_bad_schedules_are_refused_with_a_clear_message(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_weekly(spec)


def test_unknown_zone_and_bad_holiday_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        make_hours("Mars/Olympus", "mon 09:00-18:00")
    with pytest.raises(ValueError, match="not YYYY-MM-DD"):
        make_hours("UTC", "mon 09:00-18:00", ["25/12/2026"])


def test_is_open_in_the_mailbox_zone() -> None:
    assert is_open(SEOUL, kst(2026, 12, 3, 9))  # Thursday 09:00 KST
    assert not is_open(SEOUL, kst(2026, 12, 3, 18))  # end is exclusive
    assert is_open(SEOUL, datetime(2026, 12, 3, 1, tzinfo=UTC))  # 10:00 KST
    assert not is_open(SEOUL, kst(2026, 12, 6, 11))  # Sunday
    assert not is_open(SEOUL, kst(2026, 12, 25, 11))  # a holiday (a Friday)
    with pytest.raises(ValueError, match="naive"):
        is_open(SEOUL, datetime(2026, 12, 3, 9))


def test_next_open_skips_nights_weekends_and_holidays() -> None:
    assert next_open(SEOUL, kst(2026, 12, 3, 10)) == kst(2026, 12, 3, 10)  # open: now
    assert next_open(SEOUL, kst(2026, 12, 3, 19)) == kst(2026, 12, 4, 9)
    assert next_open(SEOUL, kst(2026, 12, 5, 15)) == kst(2026, 12, 7, 9)  # Sat after 14:00
    assert next_open(SEOUL, kst(2026, 12, 24, 20)) == kst(2026, 12, 26, 10)  # Fri holiday
    assert next_open(SEOUL, datetime(2026, 12, 3, 12, tzinfo=UTC)).tzinfo == SEOUL.zone


def test_business_seconds_counts_only_open_time() -> None:
    assert business_seconds(SEOUL, kst(2026, 12, 3, 17), kst(2026, 12, 4, 10)) == 2 * 3600
    assert business_seconds(SEOUL, kst(2026, 12, 5, 13), kst(2026, 12, 7, 9, 30)) == 5400
    assert business_seconds(SEOUL, kst(2026, 12, 4, 10), kst(2026, 12, 3, 10)) == 0.0
    week = business_seconds(SEOUL, kst(2026, 11, 30, 0), kst(2026, 12, 7, 0))
    assert week == (5 * 9 + 4) * 3600


def test_dst_days_keep_their_local_hours() -> None:
    berlin = make_hours("Europe/Berlin", "sun 00:00-24:00")
    # 2026-03-29 has 23 hours in Berlin
    start = datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert business_seconds(berlin, start, start.replace(day=30)) == 23 * 3600


def test_hours_for_plain_address_then_domain() -> None:
    config = HoursConfig(mailboxes={"support@acme.example": SEOUL,
                                    "acme.example": make_hours("UTC", "mon 09:00-10:00")})
    assert hours_for(config, "Support+vip@ACME.example") == SEOUL
    assert hours_for(config, "sales@acme.example") == config.mailboxes["acme.example"]
    assert hours_for(config, "help@other.example") is None
