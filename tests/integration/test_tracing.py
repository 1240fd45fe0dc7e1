"""One mail followed across the real services by its W3C trace context (`traceparent`)."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from tests.conftest import mail
from tests.e2e.test_stack import Up
from tests.integration.running import (  # noqa: F401 (fixtures)
    Hooks,
    hooks_fixture,
    ready_for_webhooks,
    smtp,
    until,
    up_fixture,
)
from tidydesk.common import trace

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # the spec's example


async def stream(nc: Client, ns: str) -> list[tuple[dict[str, str], dict[str, object]]]:
    """(headers, envelope) of every event of the namespace, in order."""
    js, out, seq = nc.jetstream(), [], 1
    while True:
        try:
            msg = await js.get_msg(f"{ns.upper()}_EVENTS", seq=seq, next=True,
                                   subject=f"{ns}.>")
        except NotFoundError:
            return out
        assert msg.seq is not None
        out.append((msg.headers or {}, json.loads(msg.data or b"")))
        seq = msg.seq + 1


def intake(up: Up, raw: bytes, traceparent: str) -> None:
    """POST /inbound/mime with the caller's trace context."""
    req = urllib.request.Request(
        f"{up.api}/inbound/mime?mailbox=support@acme.example", data=raw, method="POST",
        headers={"Authorization": f"Bearer {up.token}", "Content-Type": "message/rfc822",
                 "traceparent": traceparent})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202


def about(events: list[tuple[dict[str, str], dict[str, object]]], message_id: str
          ) -> list[tuple[dict[str, str], dict[str, object]]]:
    """The events that follow from mail `message_id` (its intake event and what it caused)."""
    return [(h, e) for h, e in events
            if isinstance(e["data"], dict) and e["data"].get("message_id") == message_id]


async def test_one_mail_keeps_its_trace_through_every_service(up: Up, hooks: Hooks,
                                                              nc: Client, ns: str) -> None:
    await ready_for_webhooks(up, hooks)
    await asyncio.to_thread(smtp, up, mail("t1@example.com", "The printer is on fire."))
    (ticket,) = (await asyncio.to_thread(up.wait, "/tickets", lambda v: v["tickets"]))[
        "tickets"]
    await asyncio.to_thread(up.post, f"/tickets/{ticket['id']}/solve", b'{"agent": "kim"}')
    await until(lambda: up.get(f"/tickets/{ticket['id']}")["status"] == "solved")
    followup = mail("t2@example.com", "It is on fire again today.", subject="Re: Printer",
                    in_reply_to="t1@example.com")
    await asyncio.to_thread(intake, up, followup, CALLER)
    await until(lambda: up.get(f"/tickets/{ticket['id']}")["status"] == "open")
    events = await stream(nc, ns)

    first, second = about(events, "t1@example.com"), about(events, "t2@example.com")
    assert [e["type"] for _, e in first] == [
        "tidydesk.message.received", "tidydesk.ticket.opened", "tidydesk.message.threaded"]
    # threading published the ticket's events from the intake event; policy the decision
    assert [e["type"] for _, e in second] == [
        "tidydesk.message.received", "tidydesk.message.threaded", "tidydesk.ticket.reopened"]
    for chain in (first, second):
        parsed = [trace.parse(e.get("traceparent")) for _, e in chain]
        assert all(parsed), chain
        assert len({p[0] for p in parsed if p}) == 1  # one trace-id
        assert len({p[1] for p in parsed if p}) == len(chain)  # a span each
        # the CloudEvents NATS binding: the extension is also the ce-traceparent header
        assert [h.get("ce-traceparent") for h, _ in chain] == [e["traceparent"] for _, e in chain]
    assert trace.trace_id(second[0][1]["traceparent"]) == trace.trace_id(CALLER)
    assert CALLER not in {e["traceparent"] for _, e in second}  # intake's span is its own
    assert trace.trace_id(first[0][1]["traceparent"]) != trace.trace_id(CALLER)  # new trace
    # an agent's command is no mail's consequence: no trace, and the event still decodes
    (solved,) = [e for _, e in events if e["type"] == "tidydesk.ticket.solved"]
    assert "traceparent" not in solved

    def logged(event: str, service: str, message_id: str, traceparent: object) -> bool:
        """`service`'s JSON log line about `event` of mail `message_id` names the trace
        (up.log has the services' stderr)."""
        lines = [json.loads(line) for line in up.log.read_text().splitlines()
                 if line.startswith("{")]
        return any(line.get("event") == event and line.get("service") == service
                   and line.get("message_id") == message_id
                   and line.get("trace_id") == trace.trace_id(traceparent) for line in lines)

    await until(lambda: logged("message_threaded", "threading", "t1@example.com",
                               first[0][1]["traceparent"]))
    await until(lambda: logged("followup_decided", "policy", "t2@example.com", CALLER))

    def delivered() -> bool:
        got = {body["id"] for _, body in hooks.posts}
        return all(e["id"] in got for _, e in [*first[1:], *second[1:]])

    await until(delivered)
    by_id = {body["id"]: (headers, body) for headers, body in hooks.posts}
    for _, event in [*first[1:], *second[1:]]:
        headers, body = by_id[str(event["id"])]
        assert body["traceparent"] == event["traceparent"]
        sent, own = trace.parse(headers.get("traceparent")), trace.parse(event["traceparent"])
        assert sent and own and sent[0] == own[0] and sent[1] != own[1]  # the POST's span
        assert not any(k.lower().startswith("ce-") for k in headers)
