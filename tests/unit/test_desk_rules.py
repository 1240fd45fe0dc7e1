"""The desk's pure parts: configuration validation, the rota, tag rules, escalation reasons,
language and complaint detection, the out-of-hours notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tidydesk.common.events import Event, MessageThreaded, TicketTagged
from tidydesk.desk.app import View, escalation_reason, tag_items
from tidydesk.desk.config import (
    Agent,
    DeskConfig,
    MailboxDesk,
    TagRule,
    Team,
    duration,
    parse_rota,
)
from tidydesk.desk.text import complaint, notice_language, out_of_hours_notice
from tidydesk.text.script import language_code
from tidydesk.tickets.ticket import Ticket

WEEKEND = "alice=mon-fri; bob=tue-sat; carol=wed-sun"
AGENTS = {n: Agent(name=n, email=f"{n}@acme.example") for n in ("lee", "alice", "bob", "carol")}


def test_the_three_person_weekend_rota_covers_every_day() -> None:
    team = Team(name="w", lead="lee", rota=parse_rota(WEEKEND))
    monday = datetime(2026, 11, 30, 12, tzinfo=UTC)
    duty = [team.on_duty(monday + timedelta(days=i), "UTC") for i in range(7)]
    assert duty == [["alice"], ["alice", "bob"], ["alice", "bob", "carol"],
                    ["alice", "bob", "carol"], ["alice", "bob", "carol"], ["bob", "carol"],
                    ["carol"]]
    assert team.describe_rota() == ("alice=mon,tue,wed,thu,fri; bob=tue,wed,thu,fri,sat; "
                                    "carol=wed,thu,fri,sat,sun")


def test_the_rota_day_is_the_teams_zone() -> None:
    team = Team(name="w", lead="lee", rota=parse_rota("alice=mon; bob=sun"), tz="Asia/Seoul")
    sunday_evening_utc = datetime(2026, 11, 29, 20, tzinfo=UTC)  # Monday 05:00 in Seoul
    assert team.on_duty(sunday_evening_utc, "UTC") == ["alice"]
    assert Team(name="u", lead="lee", rota=team.rota).on_duty(sunday_evening_utc, "") == ["bob"]


@pytest.mark.parametrize(("rota", "message"), [
    ("alice", "not AGENT=DAYS"), ("alice=mon; alice=tue", "twice"), ("", "names nobody"),
    ("alice=someday", "unknown day"),
])
def test_bad_rotas_are_refused(rota: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rota(rota)


def test_unknown_agents_zones_and_rules_are_refused() -> None:
    team = Team(name="w", lead="lee", rota=parse_rota(WEEKEND))
    DeskConfig(agents=AGENTS, teams={"w": team}).validate()
    with pytest.raises(ValueError, match="unknown agent 'lee'"):
        DeskConfig(agents={}, teams={"w": team}).validate()
    with pytest.raises(ValueError, match="unknown time zone"):
        DeskConfig(agents=AGENTS, teams={"w": Team(name="w", lead="lee", tz="Nowhere/X")}
                   ).validate()
    with pytest.raises(ValueError, match="not an email address"):
        DeskConfig(agents={"x": Agent(name="x", email="nope")}).validate()
    with pytest.raises(ValueError, match="escalation 'angry'"):
        DeskConfig(mailboxes={"a@b.c": MailboxDesk(escalate=("angry",))}).validate()
    with pytest.raises(ValueError, match="no condition"):
        TagRule(name="r", tag="t").validate()
    with pytest.raises(ValueError, match="decision 'close'"):
        TagRule(name="r", tag="t", decision="close").validate()
    with pytest.raises(ValueError, match="tag name 'Big Tag'"):
        TagRule(name="r", tag="Big Tag", contains=("x",)).validate()


def test_durations() -> None:
    assert duration("7d") == timedelta(days=7) and duration("2s") == timedelta(seconds=2)
    assert duration("1.5h") == timedelta(minutes=90)
    for bad in ("7", "0s", "-1d", "soon", "3y"):
        with pytest.raises(ValueError, match="positive number with a unit"):
            duration(bad)


def _message(reply: str, subject: str = "Help", sender: str = "a@example.com"
             ) -> MessageThreaded:
    return MessageThreaded(ticket_id="t1", message_id="m1", method="new", sender=sender,
                           subject=subject, reply=reply)


def _tags(items: list[tuple[Event, str]]) -> list[str]:
    return [e.tag if isinstance(e, TicketTagged) else repr(e) for e, _ in items]


def test_tag_rules_need_every_condition_and_add_a_tag_once() -> None:
    desk = MailboxDesk(tag_rules=(
        TagRule(name="billing", tag="billing", contains=("invoice", "refund")),
        TagRule(name="bill2", tag="billing", subject="bill"),
        TagRule(name="kr-vip", tag="vip", language="ko", sender="*@vip.example"),
        TagRule(name="thanks", tag="thanked", decision="acknowledge"),
    ))
    view = View(ticket=Ticket(ticket_id="t1"))
    items = tag_items(view, desk, _message("Where is my REFUND?", subject="bill"), None)
    assert [(e.tag, e.rule, key) for e, key in items if isinstance(e, TicketTagged)] == [
        ("billing", "billing", "tag:billing")] and len(items) == 1
    assert not tag_items(view, desk, _message("환불해 주세요"), None)  # not from vip.example
    vip = tag_items(view, desk, _message("환불해 주세요", sender="Kim@VIP.example"), None)
    assert _tags(vip) == ["vip"]
    assert _tags(tag_items(view, desk, _message("Thanks"), "acknowledge")) == ["thanked"]
    view.tags.add("billing")
    assert not tag_items(view, desk, _message("invoice"), None)


def test_escalation_reasons_fire_once_each() -> None:
    desk = MailboxDesk(escalate=("complaint", "reopened", "vip"), vip=("*@vip.example",))
    view = View(ticket=Ticket(ticket_id="t1"))
    assert escalation_reason(view, desk, _message("Please help")) is None
    assert escalation_reason(view, desk, _message("정말 최악입니다")) == (
        "complaint", "complaint in the text: '최악'")
    assert escalation_reason(view, desk, _message("hi", sender="boss@vip.example")) == (
        "vip", "VIP requester boss@vip.example")
    view.reopened = 2
    assert escalation_reason(view, desk, None) == ("reopened", "reopened 2 times")
    view.escalated.update({"reopened", "complaint"})
    assert escalation_reason(view, desk, _message("Unacceptable!")) is None


def test_language_complaints_and_the_notice() -> None:
    assert [language_code(t) for t in ("안녕하세요", "ありがとう", "谢谢", "Hello", "123")] == [
        "ko", "ja", "zh", "en", ""]
    assert notice_language("谢谢") == "en"  # no Chinese template: English
    assert complaint("I want to COMPLAIN about this") == "complain"
    assert complaint("これは酷い対応です") == "酷い"
    assert complaint("uncomplaining customer") is None  # Latin words match at word starts
    back = datetime(2026, 12, 7, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert "2026年12月7日（月曜日）09:00（JST）" in out_of_hours_notice("ja", back)
    assert "Monday, 07 December 2026 at 09:00 (JST)" in out_of_hours_notice("xx", back)
