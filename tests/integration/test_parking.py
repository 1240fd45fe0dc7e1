"""Poison events: bounded retries, a park record, the next event goes on; retry and drop."""

from __future__ import annotations

import argparse
import asyncio

from nats.aio.client import Client
from nats.js import api

from tests.conftest import eventually
from tidydesk.common import parking
from tidydesk.common.events import TicketSolved, encode, envelope
from tidydesk.common.runtime import consume


async def _fast_retries(nc: Client, ns: str, durable: str = "policy") -> None:
    """An operator's tuning: three tries, 0.2 s apart (the default waits minutes)."""
    js = nc.jetstream()
    info = await js.consumer_info(f"{ns.upper()}_EVENTS", durable)
    cfg = info.config
    cfg.max_deliver, cfg.backoff = 3, [0.2, 0.2]
    await js.add_consumer(f"{ns.upper()}_EVENTS", cfg)


async def _publish(nc: Client, ns: str, ticket: str) -> int:
    env = envelope(TicketSolved(ticket_id=ticket, agent="kim"), subject=ticket, key=ticket)
    ack = await nc.jetstream().publish(f"{ns}.tickets.{ticket}", encode(env))
    return ack.seq


async def test_poison_event_is_parked_and_the_next_one_goes_on(nc: Client, ns: str) -> None:
    await _fast_retries(nc, ns)
    js, seen, broken = nc.jetstream(), [], {"poison"}

    async def handler(seq: int, env: object) -> None:
        ticket = getattr(getattr(env, "data", None), "ticket_id", "")
        if ticket in broken:
            raise ValueError(f"cannot handle {ticket}")
        seen.append(ticket)

    task = asyncio.create_task(consume(js, ns, "policy", handler))
    try:
        poison = await _publish(nc, ns, "poison")
        await _publish(nc, ns, "fine")
        await eventually(lambda: asyncio.sleep(0, "fine" in seen))
        rows = await eventually(lambda: parking.records(js, ns))
        (record_seq, record), = rows
        assert (record.consumer, record.stream_seq, record.event_type, record.attempts) == (
            "policy", poison, "tidydesk.ticket.solved", 3)
        assert "cannot handle poison" in record.error

        broken.clear()  # the operator fixed the cause; retry through the CLI's code path
        args = argparse.Namespace(action="retry", id=record_seq)
        assert await asyncio.wait_for(parking._run(nc, ns, args), 10) == 0
        assert "poison" in seen and await parking.records(js, ns) == []
    finally:
        task.cancel()


async def test_retry_that_fails_again_keeps_a_record_and_drop_removes_it(
        nc: Client, ns: str) -> None:
    await _fast_retries(nc, ns)
    js = nc.jetstream()

    async def handler(seq: int, env: object) -> None:
        raise RuntimeError("still broken")

    task = asyncio.create_task(consume(js, ns, "policy", handler))
    try:
        await _publish(nc, ns, "t1")
        (first, _), = await eventually(lambda: parking.records(js, ns))
        args = argparse.Namespace(action="retry", id=first)
        assert await asyncio.wait_for(parking._run(nc, ns, args), 10) == 1
        (second, again), = await parking.records(js, ns)
        assert second != first and again.attempts == 4 and "still broken" in again.error
        drop = argparse.Namespace(action="drop", id=second)
        assert await parking._run(nc, ns, drop) == 0
        assert await parking.records(js, ns) == []
        assert (await js.stream_info(f"{ns.upper()}_EVENTS")).state.messages == 1  # kept
    finally:
        task.cancel()


async def test_event_a_worker_died_on_is_parked_by_the_server_advisory(
        nc: Client, ns: str) -> None:
    """Deliveries used up without any answer (a process SIGKILLed on the event each time)."""
    js = nc.jetstream()
    await _fast_retries(nc, ns)
    seq = await _publish(nc, ns, "killer")
    sub = await js.pull_subscribe_bind("policy", stream=f"{ns.upper()}_EVENTS")
    for _ in range(3):  # each delivery is taken and never answered
        (msg,) = await sub.fetch(1, timeout=5)
        assert msg.metadata.sequence.stream == seq
    await sub.unsubscribe()
    handled: list[int] = []

    async def handler(seq: int, env: object) -> None:
        handled.append(seq)

    task = asyncio.create_task(consume(js, ns, "policy", handler))
    try:
        (_, record), = await eventually(lambda: parking.records(js, ns))
        assert record.stream_seq == seq and record.attempts == 3
        assert "worker died" in record.error and handled == []
    finally:
        task.cancel()


async def test_topology_consumers_have_a_bounded_retry_budget(nc: Client, ns: str) -> None:
    js = nc.jetstream()
    for durable in ("threading", "policy", "notify-mail"):
        cfg = (await js.consumer_info(f"{ns.upper()}_EVENTS", durable)).config
        assert cfg.max_deliver and cfg.max_deliver > len(cfg.backoff or ()) > 0
        assert cfg.ack_policy == api.AckPolicy.EXPLICIT
