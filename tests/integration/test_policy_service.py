"""Policy configuration, shadow mode and backtest against a real stream."""

from __future__ import annotations

from tests.conftest import Stack, eventually, mail
from tidydesk.common.events import (
    DecisionShadowed,
    FollowupAcknowledged,
    FollowupRecorded,
    TicketReopened,
    TicketSolved,
)
from tidydesk.policy import config
from tidydesk.policy.backtest import build_report, collect, render


async def test_config_change_applies_to_next_message_and_shadow_records(stack: Stack) -> None:
    await stack.intake.accept(mail("p1@example.com", "The heater does not start."))
    (row,) = await eventually(stack.tickets)
    tid = str(row["id"])
    await stack.store.decide(tid, lambda t: [(TicketSolved(ticket_id=tid, agent="kim"), "s")])
    # the stack runs with TIDYDESK_POLICY=always-reopen; switch while it runs
    await config.save(stack.js, stack.ns, config.PolicyConfig(
        mailboxes={"support@acme.example": "content-aware"}, shadow="always-reopen"))
    await stack.intake.accept(mail("p2@example.com", "Thank you so much!",
                                   in_reply_to="p1@example.com"))

    async def acknowledged() -> bool:
        return "p2@example.com" in (await stack.store.load(tid)).decided

    await eventually(acknowledged)
    events = [e.data for _, e in await stack.store.history(stack.store.ticket_subject(tid))]
    ack = next(e for e in events if isinstance(e, FollowupAcknowledged))
    assert ack.policy == "content-aware" and ack.credited_agent == "kim" and ack.reasons
    shadow = next(e for e in events if isinstance(e, DecisionShadowed))
    assert (shadow.policy, shadow.verdict, shadow.active_verdict) == (
        "always-reopen", "reopen", "acknowledge")
    assert (await stack.store.load(tid)).status == "solved"  # the thanks changed nothing

    items, recorded = await collect(stack.js, stack.ns, progress=False)
    assert recorded == {"p2@example.com": "acknowledge"}
    report = build_report("always-reopen", items, recorded)
    assert report.follow_ups == 1 and report.transitions == {"acknowledge->reopen": 1}
    assert report.by_queue["support@acme.example"] == {"follow_ups": 1, "changed": 1}
    assert "acknowledge->reopen" in render(report)
    same = build_report("content-aware", items, recorded)
    assert same.changed == 0


OOO = ("Thank you for your email. I am out of the office until 14 April with limited access "
       "to email. For urgent matters please contact helpdesk@acme.example.")


async def test_out_of_office_reply_is_recorded_and_credits_nobody(stack: Stack) -> None:
    await stack.intake.accept(mail("o1@example.com", "The heater does not start."))
    (row,) = await eventually(stack.tickets)
    tid = str(row["id"])
    await stack.store.decide(tid, lambda t: [(TicketSolved(ticket_id=tid, agent="kim"), "s")])
    # no Auto-Submitted header: intake knows it from the text; always-reopen would reopen
    await stack.intake.accept(mail("o2@example.com", OOO, subject="Re: Printer broken",
                                   in_reply_to="o1@example.com"))

    async def recorded() -> bool:
        return "o2@example.com" in (await stack.store.load(tid)).decided

    await eventually(recorded)
    events = [e.data for _, e in await stack.store.history(stack.store.ticket_subject(tid))]
    (auto,) = [e for e in events if isinstance(e, FollowupRecorded)]
    assert auto.message_id == "o2@example.com" and auto.policy == "intake"
    assert auto.reasons[0] == "auto-reply: recorded, no action"
    assert "out-of-office text" in auto.reasons[1]
    assert not [e for e in events if isinstance(e, FollowupAcknowledged | TicketReopened)]
    ticket = await stack.store.load(tid)
    assert ticket.status == "solved" and ticket.solved_by == "kim"
