"""Mail in, tickets out: intake, threading, policy and projection on real servers."""

from __future__ import annotations

from tests.conftest import Stack, eventually, mail
from tidydesk.common.events import (
    FollowupAcknowledged,
    FollowupRecorded,
    TicketReopened,
    TicketSolved,
)
from tidydesk.queue.projection import Projector


async def test_reply_joins_ticket_and_duplicate_is_ignored(stack: Stack) -> None:
    await stack.intake.accept(mail("a1@example.com", "My printer is broken."))
    await eventually(stack.tickets)
    _, new = await stack.intake.accept(mail("a2@example.com", "Still broken",
                                            in_reply_to="a1@example.com"))
    assert new
    _, again = await stack.intake.accept(mail("a2@example.com", "Still broken",
                                              in_reply_to="a1@example.com"))
    assert not again

    async def two_messages() -> list[dict[str, object]]:
        rows = await stack.tickets()
        return rows if rows and rows[0]["message_count"] == 2 else []

    (ticket,) = await eventually(two_messages)
    assert ticket["status"] == "open" and ticket["subject"] == "Printer broken"
    assert ticket["requester"] == "alice@example.com"


async def test_followups_to_solved_ticket(stack: Stack) -> None:
    await stack.intake.accept(mail("b1@example.com", "The invoice is wrong."))
    (ticket,) = await eventually(stack.tickets)
    tid = str(ticket["id"])
    await stack.store.decide(tid, lambda t: [(TicketSolved(ticket_id=tid, agent="bob"), "s")])
    # an auto-reply never reopens, whatever the policy
    await stack.intake.accept(mail("b2@example.com", "I am out of office.",
                                   in_reply_to="b1@example.com",
                                   extra="Auto-Submitted: auto-replied\r\n"))
    # a real reply reopens under always-reopen
    await stack.intake.accept(mail("b3@example.com", "It is still wrong.",
                                   in_reply_to="b1@example.com"))

    async def decided() -> bool:
        t = await stack.store.load(tid)
        return len(t.decided) == 2

    await eventually(decided)
    events = [e for _, e in await stack.store.history(stack.store.ticket_subject(tid))]
    auto = next(e.data for e in events if isinstance(e.data, FollowupRecorded))
    assert auto.message_id == "b2@example.com"  # machine mail: recorded, nobody credited
    assert not any(isinstance(e.data, FollowupAcknowledged) for e in events)
    reopen = next(e.data for e in events if isinstance(e.data, TicketReopened))
    assert reopen.message_id == "b3@example.com" and reopen.policy == "always-reopen"
    assert (await stack.store.load(tid)).status == "open"


async def test_replay_rebuilds_the_live_projection(stack: Stack) -> None:
    for i in range(5):
        sender = f"user{i}@example.com"
        await stack.intake.accept(mail(f"r{i}@example.com", f"Question {i}",
                                       subject=f"Topic {i}", sender=sender))
        await stack.intake.accept(mail(f"r{i}-reply@example.com", "more", sender=sender,
                                       in_reply_to=f"r{i}@example.com"))

    async def settled() -> bool:
        rows = await stack.tickets()
        return len(rows) == 5 and all(r["message_count"] == 2 for r in rows)

    await eventually(settled)

    async def snapshot() -> dict[str, list[tuple[object, ...]]]:
        out = {}
        for table, key in (("tickets", "id"), ("messages", "message_id"), ("events", "seq")):
            rows = await stack.pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")
            out[table] = [tuple(r.values()) for r in rows]
        return out

    live = await snapshot()
    other = Projector(stack.js, stack.pool, stack.ns, name="replay-check")
    await other.reset()  # wipes the tables: a replay from sequence 1
    await other.run(stop_at_end=True)
    assert await snapshot() == live
