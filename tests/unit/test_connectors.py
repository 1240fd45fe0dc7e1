"""The connector port's pure logic: what each event means to another helpdesk, and that a
redelivered event is carried out once. The real RT is in tests/integration/test_rt.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidydesk.common.events import (
    Envelope,
    Event,
    FollowupAcknowledged,
    FollowupRecorded,
    MessageThreaded,
    ReplySent,
    TicketClosed,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    TicketSplit,
    envelope,
)
from tidydesk.connectors.port import Comment, Correspond, Create, Op, SetStatus, plan
from tidydesk.connectors.rt import RtSettings, ticket_sql
from tidydesk.connectors.sync import Connector, CreatePending, Link, MemoryLinks
from tidydesk.tickets.ticket import Ticket, fold

DECIDED = dict(ticket_id="t1", policy="content-aware", version="3", confidence=0.9,
               reasons=("thanks only",))


def opened(tid: str = "t1", split_from: str | None = None) -> TicketOpened:
    return TicketOpened(ticket_id=tid, number=1, subject="Printer", requester="a@example.com",
                        mailbox="support@acme.example", message_id=f"{tid}-m0",
                        split_from=split_from)


def threaded(mid: str, text: str, tid: str = "t1", auto: str | None = None
             ) -> MessageThreaded:
    return MessageThreaded(ticket_id=tid, message_id=mid, method="new", sender="a@example.com",
                           reply=text, auto=auto)


def ticket(*events: Event) -> Ticket:
    return fold("t1", [(i + 1, envelope(e, "t1", str(i))) for i, e in enumerate(events)])


FIRST = threaded("t1-m0", "It prints blank pages.")
MESSAGES = {m.message_id: m for m in (FIRST, threaded("m2", "Thank you!"),
                                      threaded("m3", "Still broken."))}


def test_a_new_ticket_is_created_with_its_first_message_and_its_origin() -> None:
    assert plan(opened(), Ticket(ticket_id="t1"), MESSAGES) == [Create(
        ticket_id="t1", subject="Printer", requester="a@example.com",
        text="It prints blank pages.")]
    (create,) = plan(opened(split_from="t0"), Ticket(ticket_id="t1"), MESSAGES)
    assert isinstance(create, Create) and create.refers_to == "t0"
    # the first message itself went with the create; another one (the first was held, an
    # agent let this one in) is the conversation
    assert plan(FIRST, ticket(opened()), MESSAGES, opening="t1-m0") == []
    assert plan(threaded("m3", "Still broken."), ticket(opened()), MESSAGES,
                opening="t1-m0") == [Correspond(ticket_id="t1", text="Still broken.")]


def test_an_agent_reply_sent_from_tidydesk_is_a_comment_not_mailed_again() -> None:
    sent = ReplySent(ticket_id="t1", message_id="r1", agent="kim", text="Try the rear tray.",
                     sender="support@acme.example", to="a@example.com", subject="Re: Printer",
                     reply_to="support+x@acme.example")
    (note,) = plan(sent, ticket(opened(), FIRST), MESSAGES, opening="t1-m0")
    assert isinstance(note, Comment) and note.status is None
    assert "by kim to a@example.com" in note.text and "Try the rear tray." in note.text


def test_replies_to_an_open_ticket_are_correspondence_and_machine_mail_a_comment() -> None:
    before = ticket(opened(), FIRST)
    assert plan(threaded("m3", "Still broken."), before, MESSAGES) == [
        Correspond(ticket_id="t1", text="Still broken.")]
    (note,) = plan(threaded("m4", "I am away", auto="auto-replied"), before, MESSAGES)
    assert isinstance(note, Comment) and "auto-replied" in note.text and note.status is None


def test_a_follow_up_to_a_solved_ticket_waits_for_the_decision() -> None:
    solved = ticket(opened(), FIRST, TicketSolved(ticket_id="t1"))
    assert plan(threaded("m2", "Thank you!"), solved, MESSAGES) == []
    (ack,) = plan(FollowupAcknowledged(message_id="m2", **DECIDED), solved, MESSAGES)  # type: ignore[arg-type]
    assert isinstance(ack, Comment) and ack.status == "resolved"
    assert "Thank you!" in ack.text and "content-aware 3: thanks only" in ack.text
    (auto,) = plan(FollowupRecorded(message_id="m2", **DECIDED), solved, MESSAGES)  # type: ignore[arg-type]
    assert isinstance(auto, Comment) and auto.status == "resolved"
    assert plan(TicketReopened(message_id="m3", **DECIDED), solved, MESSAGES) == [  # type: ignore[arg-type]
        Correspond(ticket_id="t1", text="Still broken.", status="open")]
    assert plan(TicketReopened(message_id="gone", **DECIDED), solved, MESSAGES) == [  # type: ignore[arg-type]
        SetStatus(ticket_id="t1", status="open")]
    # the new ticket's own ticket.opened (split_from) creates it
    assert plan(TicketSplit(message_id="m3", new_ticket_id="t2", **DECIDED), solved,  # type: ignore[arg-type]
                MESSAGES) == []


@pytest.mark.parametrize("event", [TicketSolved(ticket_id="t1"), TicketClosed(ticket_id="t1")])
def test_solved_and_closed_are_resolved(event: Event) -> None:
    assert plan(event, ticket(opened(), FIRST), MESSAGES) == [
        SetStatus(ticket_id="t1", status="resolved")]


class Desk:
    """A Helpdesk that writes down what it was asked to do."""

    def __init__(self) -> None:
        self.done: list[tuple[str, Op]] = []
        self.existing: str | None = None

    async def create(self, op: Create, refers_to: str | None) -> str:
        self.done.append((refers_to or "", op))
        return str(100 + len(self.done))

    async def find(self, op: Create, since: datetime) -> str | None:
        return self.existing

    async def correspond(self, external: str, op: Correspond) -> None:
        self.done.append((external, op))

    async def comment(self, external: str, op: Comment) -> None:
        self.done.append((external, op))

    async def set_status(self, external: str, op: SetStatus) -> None:
        self.done.append((external, op))


class Events:
    """One ticket's history in memory, numbered like stream sequences."""

    def __init__(self, *events: Event) -> None:
        self.items = [(i + 1, envelope(e, getattr(e, "ticket_id", ""), str(i)))
                      for i, e in enumerate(events)]

    def ticket_subject(self, ticket_id: str) -> str:
        return ticket_id

    async def history(self, subject: str) -> list[tuple[int, Envelope]]:
        return [(s, e) for s, e in self.items if e.subject == subject]


async def test_every_event_delivered_twice_is_carried_out_once() -> None:
    events = Events(opened(), FIRST, threaded("m3", "Still broken."),
                    TicketSolved(ticket_id="t1"), opened("t2", split_from="t1"),
                    threaded("t2-m0", "Another thing", tid="t2"))
    desk, links = Desk(), MemoryLinks()
    connector = Connector(events, desk, links)
    for seq, env in events.items + events.items:
        await connector.handle(seq, env)
    assert [(ext, type(op).__name__) for ext, op in desk.done] == [
        ("", "Create"), ("101", "Correspond"), ("101", "SetStatus"), ("101", "Create")]
    assert links.links["t2"].external == "104"  # linked to the first ticket's RT id


async def test_an_unrecorded_create_is_found_and_an_unknown_ticket_left_alone() -> None:
    desk, links = Desk(), MemoryLinks()
    connector = Connector(Events(), desk, links)
    op = Create(ticket_id="t1", subject="s", requester="a@example.com", text="x")
    await links.put("t1", Link(external="", seq=5, step=0, since=datetime.now(UTC)))
    desk.existing = "77"
    await connector.apply(5, 0, op)
    assert desk.done == [] and links.links["t1"] == Link(external="77", seq=5, step=0)
    await connector.apply(9, 0, Correspond(ticket_id="nobody", text="hi"))
    assert desk.done == [] and "nobody" not in links.links


async def test_an_operation_on_a_ticket_whose_create_failed_waits_for_it() -> None:
    desk, links = Desk(), MemoryLinks()
    await links.put("t1", Link(external="", seq=5, step=0, since=datetime.now(UTC)))
    with pytest.raises(CreatePending, match="t1"):  # retried, then parked: never dropped
        await Connector(Events(), desk, links).apply(6, 0, Correspond(ticket_id="t1", text="x"))
    assert desk.done == []


def test_rt_settings_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match="TIDYDESK_RT_URL"):
        RtSettings.from_env({})
    with pytest.raises(ValueError, match="TIDYDESK_RT_TOKEN"):
        RtSettings.from_env({"TIDYDESK_RT_URL": "http://rt"})
    with pytest.raises(ValueError, match="new or all"):
        RtSettings.from_env({"TIDYDESK_RT_URL": "http://rt", "TIDYDESK_RT_TOKEN": "x",
                             "TIDYDESK_RT_START": "yesterday"})
    rt = RtSettings.from_env({"TIDYDESK_RT_URL": "http://rt", "TIDYDESK_RT_TOKEN": "abc",
                              "TIDYDESK_RT_QUEUE": "Support"})
    assert (rt.queue, rt.authorization()) == ("Support", "token abc")
    basic = RtSettings(url="http://rt", user="root", password="password")
    assert basic.authorization() == "Basic cm9vdDpwYXNzd29yZA=="
    assert ticket_sql("O'Brien \\ co") == "'O\\'Brien \\\\ co'"
