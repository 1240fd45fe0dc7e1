"""Event contract, ticket fold, threading lookup, settings and schema (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from tidydesk.common.events import (
    MessageReceived,
    MessageThreaded,
    TicketOpened,
    TicketReopened,
    TicketSolved,
    decode,
    encode,
    envelope,
)
from tidydesk.common.settings import SETTINGS, Settings
from tidydesk.threading.engine import candidates, locate
from tidydesk.tickets.ticket import fold


def received(**kw: object) -> MessageReceived:
    return MessageReceived(**{"message_id": "m@x", "digest": "d", "mailbox": "s@x",
                              "sender": "a@x", **kw})  # type: ignore[arg-type]


def test_envelope_round_trip_and_deterministic_id() -> None:
    event = TicketSolved(ticket_id="t1", agent="kim")
    a, b = envelope(event, "t1", "k"), envelope(event, "t1", "k")
    assert a.id == b.id != envelope(event, "t1", "other").id
    wire = msgspec.json.decode(encode(a))
    assert wire["specversion"] == "1.0" and wire["type"] == "tidydesk.ticket.solved"
    assert decode(encode(a)).data == event


def test_unknown_fields_from_newer_producers_still_decode() -> None:
    wire = msgspec.json.decode(encode(envelope(TicketSolved(ticket_id="t"), "t", "k")))
    wire["data"]["added_later"] = 1
    assert decode(msgspec.json.encode(wire)).data == TicketSolved(ticket_id="t")


def test_fold_tracks_status_and_followups() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        TicketOpened(ticket_id="t", number=7, subject="s", requester="a@x", mailbox="m",
                     message_id="m1"),
        MessageThreaded(ticket_id="t", message_id="m1", method="new"),
        TicketSolved(ticket_id="t", agent="kim"),
        MessageThreaded(ticket_id="t", message_id="m2", method="in-reply-to"),
        TicketReopened(ticket_id="t", message_id="m2", policy="p", version="1",
                       confidence=1.0),
    ]
    history = [(i + 1, envelope(e, "t", str(i))) for i, e in enumerate(events)]
    ticket = fold("t", history[:4])
    assert (ticket.status, ticket.number, ticket.solved_by) == ("solved", 7, "kim")
    assert ticket.followups == {"m2": "solved"} and ticket.version == 4
    ticket = fold("t", history)
    assert ticket.status == "open" and ticket.decided == {"m2"} and t0 < ticket.opened_at  # type: ignore[operator]


def test_locate_prefers_in_reply_to_then_nearest_reference() -> None:
    msg = received(in_reply_to=("p2",), references=("p0", "p1", "p2"))
    assert candidates(msg) == ["p2", "p1", "p0"]
    assert locate(msg, {"p0": "A", "p2": "B"}) == ("B", "in-reply-to")
    assert locate(received(references=("p0", "p1")), {"p0": "A", "p1": "C"}) == (
        "C", "references")
    assert locate(msg, {}) == (None, "new")
    assert candidates(received(in_reply_to=("m@x",))) == []  # a message is not its own parent


def test_settings_defaults_and_validation() -> None:
    settings = Settings.from_env({})
    assert settings.smtp_port == 2525 and settings.http_port == 8080
    assert settings.namespace == "tidydesk" and settings.webhook_urls == ()
    assert Settings.from_env({"TIDYDESK_WEBHOOK_URLS": "http://a, http://b"}).webhook_urls == (
        "http://a", "http://b")
    with pytest.raises(ValueError):
        Settings.from_env({"TIDYDESK_NAMESPACE": "bad.name"})
    with pytest.raises(msgspec.ValidationError):
        Settings.from_env({"TIDYDESK_SMTP_PORT": "many"})
    assert all(name.startswith("TIDYDESK_") for name in SETTINGS)


def test_trace_ids_are_valid_unique_and_fresh_in_a_forked_child() -> None:
    import os

    from tidydesk.common import trace

    ids = {trace.new() for _ in range(2000)}
    assert len(ids) == 2000 and all(trace.parse(t) for t in ids)
    parent = trace.new()
    spans = {trace.child(parent) for _ in range(2000)}
    assert len(spans) == 2000 and all(trace.trace_id(s) == trace.trace_id(parent) for s in spans)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's next id must not repeat the parent's
        os.write(write, trace.new().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 100).decode() != trace.new()
