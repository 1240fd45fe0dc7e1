"""consume() with lanes: up to N handlers at once, one ticket's events in stream order."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

from nats.aio.client import Client

from tests.conftest import eventually
from tidydesk.common import parking
from tidydesk.common.events import Envelope, TicketSolved, encode, envelope
from tidydesk.common.runtime import consume


async def _retries(nc: Client, ns: str, max_deliver: int, backoff: list[float]) -> None:
    """An operator's tuning of the policy consumer's retry budget (and so its ack deadline)."""
    js = nc.jetstream()
    cfg = (await js.consumer_info(f"{ns.upper()}_EVENTS", "policy")).config
    cfg.max_deliver, cfg.backoff = max_deliver, backoff
    await js.add_consumer(f"{ns.upper()}_EVENTS", cfg)


async def _publish(nc: Client, ns: str, plan: list[str]) -> dict[str, list[int]]:
    """One event per entry of `plan` (a ticket id), in that order; stream seqs per ticket."""
    js, seqs = nc.jetstream(), defaultdict(list)
    for i, ticket in enumerate(plan):
        env = envelope(TicketSolved(ticket_id=ticket, agent="kim"), subject=ticket, key=str(i))
        seqs[ticket].append((await js.publish(f"{ns}.tickets.{ticket}", encode(env))).seq)
    return dict(seqs)


class Recorder:
    """A handler that sleeps a random while and records what it saw, per ticket and at once."""

    def __init__(self, fail: frozenset[str] = frozenset(), most: float = 0.02) -> None:
        self.fail, self.most = fail, most
        self.rng = random.Random(11)
        self.by_ticket: dict[str, list[int]] = defaultdict(list)
        self.handled: list[int] = []
        self.attempts: Counter[str] = Counter()
        self.active = self.peak = 0

    def ticket(self, env: Envelope) -> str:
        assert isinstance(env.data, TicketSolved)
        return env.data.ticket_id

    async def __call__(self, seq: int, env: Envelope) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.rng.uniform(0, self.most))
            ticket = self.ticket(env)
            if ticket in self.fail:
                self.attempts[ticket] += 1
                raise ValueError(f"cannot handle {ticket}")
            self.by_ticket[ticket].append(seq)
            self.handled.append(seq)
        finally:
            self.active -= 1


async def _settled(nc: Client, ns: str) -> bool:
    info = await nc.jetstream().consumer_info(f"{ns.upper()}_EVENTS", "policy")
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def test_lanes_keep_each_tickets_order_and_ack_every_event_once(
        nc: Client, ns: str) -> None:
    rng = random.Random(3)
    plan = [f"t{rng.randrange(20)}" for _ in range(300)]  # 20 tickets, interleaved
    seqs = await _publish(nc, ns, plan)
    handler = Recorder()
    task = asyncio.create_task(consume(nc.jetstream(), ns, "policy", handler, concurrency=8))
    try:
        await eventually(lambda: _settled(nc, ns), within=60)
    finally:
        task.cancel()
    assert dict(handler.by_ticket) == seqs  # each ticket's events, in stream order
    assert sorted(handler.handled) == list(range(1, 301))  # every event handled once
    assert 1 < handler.peak <= 8
    info = await nc.jetstream().consumer_info(f"{ns.upper()}_EVENTS", "policy")
    assert info.num_redelivered == 0 and info.ack_floor.stream_seq == 300


async def test_concurrency_one_is_one_event_after_another_in_stream_order(
        nc: Client, ns: str) -> None:
    await _publish(nc, ns, [f"t{i % 7}" for i in range(60)])
    handler = Recorder(most=0.005)
    task = asyncio.create_task(consume(nc.jetstream(), ns, "policy", handler, concurrency=1))
    try:
        await eventually(lambda: _settled(nc, ns), within=60)
    finally:
        task.cancel()
    assert handler.handled == list(range(1, 61)) and handler.peak == 1


async def test_events_waiting_in_a_lane_are_kept_alive_past_the_ack_deadline(
        nc: Client, ns: str) -> None:
    """One ticket's 40 events wait behind each other for ~2 s; the ack deadline is 0.5 s."""
    await _retries(nc, ns, 3, [0.5, 0.5])
    await _publish(nc, ns, ["hot"] * 40 + ["cold"] * 5)
    handler = Recorder(most=0.1)
    task = asyncio.create_task(consume(nc.jetstream(), ns, "policy", handler, concurrency=8))
    try:
        await eventually(lambda: _settled(nc, ns), within=60)
    finally:
        task.cancel()
    assert handler.by_ticket["hot"] == list(range(1, 41))  # none handled twice
    info = await nc.jetstream().consumer_info(f"{ns.upper()}_EVENTS", "policy")
    assert info.num_redelivered == 0


async def test_a_failing_event_is_retried_and_parked_while_other_tickets_go_on(
        nc: Client, ns: str) -> None:
    js = nc.jetstream()
    await _retries(nc, ns, 2, [5.0])  # one retry, 5 s after the first failure
    plan = ["poison"] + [f"t{i % 10}" for i in range(100)] + ["poison"]
    seqs = await _publish(nc, ns, plan)
    handler = Recorder(fail=frozenset({"poison"}))
    task = asyncio.create_task(consume(js, ns, "policy", handler, concurrency=8))
    try:
        await eventually(lambda: asyncio.sleep(0, len(handler.handled) == 100
                                               and handler.attempts["poison"] == 2))
        # every other ticket's events (and the poison's own later one) went on while the
        # first poison event waits for its retry
        assert await parking.records(js, ns) == []
        assert all(handler.by_ticket[t] == s for t, s in seqs.items() if t != "poison")

        async def both_parked() -> list[tuple[int, int]]:
            rows = [(r.stream_seq, r.attempts) for _, r in await parking.records(js, ns)]
            return sorted(rows) if len(rows) == 2 else []

        assert await eventually(both_parked) == [(1, 2), (102, 2)]
        await eventually(lambda: _settled(nc, ns))
    finally:
        task.cancel()
    assert handler.attempts["poison"] == 4


def test_threading_lanes_join_a_reply_to_its_parent_and_a_requester_to_herself() -> None:
    from nats.aio.msg import Msg

    from tidydesk.common.events import MessageReceived
    from tidydesk.threading.app import lanes
    from tidydesk.threading.engine import Options

    def keys(mail: MessageReceived, same_domain: bool = False) -> set[str]:
        env = envelope(mail, subject=mail.message_id, key=mail.message_id)
        msg = Msg(_client=None, subject="t.inbound.x")  # type: ignore[arg-type]
        return set(lanes(Options(same_domain=same_domain))(msg, env))

    def received(mid: str, sender: str, box: str = "support@acme.example",
                 parent: str | None = None) -> MessageReceived:
        return MessageReceived(message_id=mid, digest="d", mailbox=box, sender=sender,
                               in_reply_to=(parent,) if parent else ())

    lee, sam = received("h0", "lee@example.com"), received("h1", "sam@example.com", parent="h0")
    assert keys(lee) & keys(sam)  # the reply waits for its parent (and the other way round)
    assert keys(lee) & keys(received("h2", "Lee@example.com"))  # one requester, in order
    assert not keys(lee) & keys(received("h3", "kim@example.com"))  # unrelated: side by side
    assert not keys(lee) & keys(received("h0", "lee@example.com", box="help@other.example"))
    assert keys(lee, True) & keys(received("h4", "kim@example.com"), True)  # same domain
