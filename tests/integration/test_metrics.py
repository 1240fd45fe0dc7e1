"""`tidydesk up` on the real servers: every service's /metrics parses and its counters move."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from tests.conftest import mail
from tests.e2e.test_stack import Up
from tests.integration.running import (  # noqa: F401 (fixtures)
    Hooks,
    has,
    hooks_fixture,
    ready_for_webhooks,
    scrape,
    smtp,
    until,
    up_fixture,
    value,
)
from tidydesk.common.settings import SERVICES

MAILS = 3


async def test_every_service_serves_metrics_that_move(up: Up, hooks: Hooks, nc: Client,
                                                      ns: str) -> None:
    urls = await ready_for_webhooks(up, hooks)
    assert set(urls) == set(SERVICES)
    for i in range(MAILS):
        await asyncio.to_thread(smtp, up, mail(f"m{i}@example.com", f"Problem number {i}.",
                                               subject=f"Problem {i}"))
    await until(lambda: len(up.get("/tickets")["tickets"]) == MAILS)
    first = next(t for t in up.get("/tickets")["tickets"] if t["subject"] == "Problem 0")
    await asyncio.to_thread(up.post, f"/tickets/{first['id']}/solve", b'{"agent": "kim"}')
    await until(lambda: up.get(f"/tickets/{first['id']}")["status"] == "solved")
    await asyncio.to_thread(smtp, up, mail("m0-again@example.com", "It crashes again today.",
                                           subject="Re: Problem 0", in_reply_to="m0@example.com"))
    await nc.jetstream().publish(f"{ns}.inbound.garbage", b"{not an event")

    def moved() -> bool:
        s = {name: scrape(url) for name, url in urls.items()}
        return (value(s["ingest"], "tidydesk_intake_messages_total", outcome="accepted")
                >= MAILS + 1
                and value(s["threading"], "tidydesk_events_handled_total",
                          consumer="threading", type="message.received") >= MAILS + 1
                and value(s["threading"], "tidydesk_events_parked_total",
                          consumer="threading", type="undecodable") == 1
                and value(s["policy"], "tidydesk_policy_decisions_total", language="en") >= 1
                and value(s["notify"], "tidydesk_webhook_deliveries_total",
                          endpoint=hooks.consumer, outcome="delivered") >= 2 * MAILS
                and value(s["queue"], "tidydesk_projection_latency_seconds_count",
                          type="message.received") >= MAILS + 1
                and value(s["queue"], "tidydesk_events_parked_total", consumer="queue") == 1)

    await until(moved)
    s = {name: scrape(url) for name, url in urls.items()}
    # lag gauges of every durable consumer, as the server counts it
    assert has(s["threading"], "tidydesk_consumer_pending", consumer="threading")
    assert has(s["policy"], "tidydesk_consumer_pending", consumer="policy")
    assert has(s["notify"], "tidydesk_consumer_ack_pending", consumer="notify-mail")
    assert has(s["queue"], "tidydesk_consumer_pending", consumer="queue")  # the projection's
    assert value(s["queue"], "tidydesk_consumer_pending", consumer="queue") == 0  # caught up
    assert value(s["policy"], "tidydesk_events_handled_total", consumer="policy") >= 2 * MAILS
    assert value(s["notify"], "tidydesk_events_handled_total", consumer=hooks.consumer) >= (
        2 * MAILS)
    # the latency buckets are cumulative: +Inf holds every observation
    assert value(s["queue"], "tidydesk_projection_latency_seconds_bucket", le="+Inf") == value(
        s["queue"], "tidydesk_projection_latency_seconds_count")
    assert value(s["threading"], "tidydesk_events_failed_total") == 0
    assert all(has(samples, "process_cpu_seconds_total") for samples in s.values())
