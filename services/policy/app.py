"""The policy service: decides what a follow-up to a solved or closed ticket does."""

from __future__ import annotations

from datetime import datetime

import structlog
from nats.js import JetStreamContext

from tidydesk.common import health, metrics
from tidydesk.common.events import (
    DecisionShadowed,
    Envelope,
    Event,
    FollowupAcknowledged,
    FollowupRecorded,
    MessageThreaded,
    TicketOpened,
    TicketReopened,
    TicketSplit,
)
from tidydesk.common.runtime import appended_after, consume, open_bus
from tidydesk.common.settings import Settings
from tidydesk.common.store import (
    JetStreamEventStore,
    KvIndex,
    close,
    digest_key,
    link,
    message_key,
)
from tidydesk.policy.base import Decision, FollowUp
from tidydesk.policy.config import load as load_config
from tidydesk.policy.registry import get_policy
from tidydesk.text.script import language_code
from tidydesk.tickets.ticket import Ticket
from tidydesk.tickets.view import view

log = structlog.get_logger()

AUTO_REASON = "auto-reply: recorded, no action"


def decision_events(ticket: Ticket, m: MessageThreaded, d: Decision, new_ticket: str
                    ) -> list[tuple[Event, str]]:
    """The events that record decision `d` on the old ticket."""
    common = dict(ticket_id=ticket.ticket_id, message_id=m.message_id, policy=d.policy,
                  version=d.version, confidence=d.confidence, reasons=d.reasons)
    event: Event
    if d.verdict == "auto":  # machine mail: on the record, nobody credited, nothing changes
        event = FollowupRecorded(**common)  # type: ignore[arg-type]
    elif d.verdict == "acknowledge":
        event = FollowupAcknowledged(**common, credited_agent=ticket.solved_by)  # type: ignore[arg-type]
    elif d.verdict == "split":
        event = TicketSplit(**common, new_ticket_id=new_ticket)  # type: ignore[arg-type]
    else:
        event = TicketReopened(**common)  # type: ignore[arg-type]
    return [(event, f"decision:{m.message_id}")]


def decide(ticket: Ticket, m: MessageThreaded, at: datetime, policy: str) -> Decision:
    """The decision of `policy` on follow-up `m` (pure: the service and backtest share it)."""
    if m.auto:  # machine mail is its own outcome, whatever the policy: no reopen, no credit
        return Decision(verdict="auto", confidence=1.0, policy="intake", version="2",
                        reasons=(AUTO_REASON, f"machine mail: {m.auto}"))
    return get_policy(policy).decide(
        view(ticket, m.message_id, at),
        FollowUp(sender=m.sender, subject=m.subject, body=m.reply, reply=m.reply),
    )


class PolicyService:
    def __init__(self, js: JetStreamContext, settings: Settings) -> None:
        self.js, self.ns, self.settings = js, settings.namespace, settings
        self.store = JetStreamEventStore(js, self.ns)
        self.index = KvIndex(js, self.ns)

    async def handle(self, seq: int, env: Envelope) -> None:
        # every ticket event extends the cached ticket: a follow-up is then decided without
        # reading the ticket, and the decision's append checks the state is still current
        ticket_id = getattr(env.data, "ticket_id", None)
        known = self.store.delivered(ticket_id, seq, env, appended_after()) if isinstance(
            ticket_id, str) and env.subject == ticket_id else None
        if not isinstance(env.data, MessageThreaded):
            return
        m = env.data
        with structlog.contextvars.bound_contextvars(ticket_id=m.ticket_id,
                                                     message_id=m.message_id):
            ticket = known or await self.store.load(m.ticket_id)
            if m.message_id not in ticket.followups or m.message_id in ticket.decided:
                return  # a message to an open ticket needs no decision
            config = await load_config(self.js, self.ns)  # read per message: no restarts
            active = config.active_for(ticket.mailbox, self.settings.policy)
            decision = decide(ticket, m, env.time, active)
            shadow = None
            if config.shadow and config.shadow != active:
                shadow = decide(ticket, m, env.time, config.shadow)
            new_ticket = digest_key(f"split:{m.message_id}")[:24]
            if decision.verdict == "split":
                await self.open_split(ticket, m, new_ticket)

            def record(t: Ticket) -> list[tuple[Event, str]]:
                if m.message_id in t.decided:
                    return []
                items = decision_events(t, m, decision, new_ticket)
                if shadow is not None:
                    items.append((DecisionShadowed(
                        ticket_id=t.ticket_id, message_id=m.message_id, policy=shadow.policy,
                        version=shadow.version, confidence=shadow.confidence,
                        reasons=shadow.reasons, verdict=shadow.verdict,
                        active_verdict=decision.verdict,
                    ), f"shadow:{m.message_id}"))
                return items

            if not await self.store.decide(m.ticket_id, record, first=ticket):
                return  # decided before (a redelivery that `known` was too early to show)
            metrics.DECISIONS.labels(decision.policy, decision.verdict,
                                     language_code(m.reply) or "other").inc()
            log.info("followup_decided", verdict=decision.verdict, policy=decision.policy,
                     confidence=decision.confidence, reasons=list(decision.reasons),
                     shadow=shadow.verdict if shadow else None)

    async def open_split(self, old: Ticket, m: MessageThreaded, new_ticket: str) -> None:
        """Open the new ticket for an unrelated topic, linked back to the old one."""
        if not (await self.store.load(new_ticket)).exists:
            number = await self.index.next_number(new_ticket)
            opened = TicketOpened(ticket_id=new_ticket, number=number, subject=m.subject,
                                  requester=m.sender, mailbox=old.mailbox,
                                  message_id=m.message_id, split_from=old.ticket_id)
            moved = MessageThreaded(ticket_id=new_ticket, message_id=m.message_id,
                                    method="split", sender=m.sender, subject=m.subject,
                                    reply=m.reply, reasons=(f"split from {old.ticket_id}",))
            await self.store.decide(
                new_ticket, lambda t: [] if t.exists else [(opened, "opened"), (moved, "moved")]
            )
        # replies follow the new topic
        await self.index.put(message_key(old.mailbox, m.message_id), link(new_ticket, old.mailbox))


async def run(settings: Settings) -> None:
    get_policy(settings.policy)  # fail at start on an unknown policy name
    health.register("consumer", health.waiting("connecting to JetStream"))
    nc, js = await open_bus(settings, "tidydesk-policy")
    health.register("consumer", health.consumer(js, settings.namespace, "policy"))
    try:
        await consume(js, settings.namespace, "policy", PolicyService(js, settings).handle,
                      concurrency=settings.consumer_concurrency)
    finally:
        await close(nc)  # unacked work is redelivered to the next instance

