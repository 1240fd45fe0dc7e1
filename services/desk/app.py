"""The desk service: what a support team needs around the decisions.

On the `desk` consumer (every ticket event) it tags tickets by the mailbox's rules, escalates
complaints, often-reopened tickets and VIP requesters to the team lead, assigns new tickets
round-robin among the agents on duty, answers new tickets outside business hours once,
credits acknowledged thank-yous to the agent who solved the ticket, and schedules the
auto-close of solved tickets (a periodic sweep closes those still solved when due). Every
change is an event appended to the ticket at the version it was decided on; configuration is
read per event (see config.py, hours.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from tidydesk.common import health
from tidydesk.common.events import (
    AgentThanked,
    Envelope,
    Event,
    FollowupAcknowledged,
    MessageThreaded,
    NoticeSent,
    ReplySent,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketReopened,
    TicketSolved,
    TicketSplit,
    TicketTagged,
    TicketUntagged,
    type_of,
)
from tidydesk.common.runtime import consume, open_bus
from tidydesk.common.settings import Settings
from tidydesk.common.store import (
    Conflict,
    JetStreamEventStore,
    KvIndex,
    close,
    digest_key,
    link,
    message_key,
)
from tidydesk.desk import config as desk_config
from tidydesk.desk.config import DeskConfig, MailboxDesk, Team, duration
from tidydesk.desk.hours import hours_for, is_open, next_open
from tidydesk.desk.hours import load_config as load_hours
from tidydesk.desk.text import complaint, notice_language, out_of_hours_notice
from tidydesk.text.script import language_code
from tidydesk.tickets.mailbox import tenant
from tidydesk.tickets.ticket import Ticket, fold
from tidydesk.tickets.tokens import reply_address, shared_secret

log = structlog.get_logger()
DURABLE = "desk"
SWEEP_EVERY = 30.0  # seconds between auto-close sweeps
OUT_OF_HOURS = "out-of-hours"
VERDICTS: dict[type, str] = {TicketReopened: "reopen", FollowupAcknowledged: "acknowledge",
                             TicketSplit: "split"}
Items = list[tuple[Event, str]]


class View(msgspec.Struct, kw_only=True):
    """A ticket as the desk sees it: the shared fold plus what the desk itself recorded."""

    ticket: Ticket
    ids: set[str] = msgspec.field(default_factory=set)  # of its events
    tags: set[str] = msgspec.field(default_factory=set)
    escalated: set[str] = msgspec.field(default_factory=set)
    assigned: str | None = None
    noticed: bool = False  # the out-of-hours notice went out
    thanked: set[str] = msgspec.field(default_factory=set)  # acknowledged message ids
    reopened: int = 0
    last_agent: str | None = None  # of the last reply a person wrote

    @property
    def version(self) -> int:
        return self.ticket.version


def view_of(ticket_id: str, history: list[tuple[int, Envelope]]) -> View:
    view = View(ticket=fold(ticket_id, history), ids={env.id for _, env in history})
    for _, env in history:
        match env.data:
            case TicketTagged(tag=tag):
                view.tags.add(tag)
            case TicketUntagged(tag=tag):
                view.tags.discard(tag)
            case TicketEscalated(rule=rule):
                view.escalated.add(rule)
            case TicketAssigned(agent=agent):
                view.assigned = agent
            case ReplySent(auto=auto) if auto:
                view.noticed = view.noticed or auto == OUT_OF_HOURS
            case ReplySent(agent=agent):
                view.last_agent = agent
            case AgentThanked(message_id=mid):
                view.thanked.add(mid)
            case TicketReopened():
                view.reopened += 1
    return view


def tag_items(view: View, desk: MailboxDesk, m: MessageThreaded, decision: str | None
              ) -> Items:
    """ticket.tagged for each rule that fires and whose tag the ticket lacks (pure)."""
    items: Items = []
    lang, tags = language_code(m.reply or m.subject), set(view.tags)
    for rule in desk.tag_rules:
        if rule.tag not in tags and rule.matches(m.subject, m.reply, m.sender, lang, decision):
            tags.add(rule.tag)
            items.append((TicketTagged(ticket_id=view.ticket.ticket_id, tag=rule.tag,
                                       rule=rule.name), f"tag:{rule.tag}"))
    return items


def escalation_reason(view: View, desk: MailboxDesk, m: MessageThreaded | None
                      ) -> tuple[str, str] | None:
    """(rule, reason) of the first escalation that fires and has not fired yet (pure)."""
    for rule in desk.escalate:
        if rule in view.escalated:
            continue
        if rule == "complaint" and m is not None:
            found = complaint(f"{m.subject}\n{m.reply}")
            if found:
                return rule, f"complaint in the text: {found!r}"
        if rule == "reopened" and view.reopened >= desk.reopened_limit:
            return rule, f"reopened {view.reopened} times"
        if rule == "vip" and m is not None and any(
                fnmatch.fnmatch(m.sender.lower(), p.lower()) for p in desk.vip):
            return rule, f"VIP requester {m.sender}"
    return None


class DeskService:
    def __init__(self, js: JetStreamContext, settings: Settings,
                 sweep_every: float = SWEEP_EVERY) -> None:
        self.js, self.ns, self.sweep_every = js, settings.namespace, sweep_every
        self.store = JetStreamEventStore(js, self.ns)
        self.index = KvIndex(js, self.ns)
        self._secret: bytes | None = None

    # --- reading and writing a ticket ---

    async def view(self, ticket_id: str) -> View:
        return view_of(ticket_id, await self.store.history(self.store.ticket_subject(ticket_id)))

    async def decide(self, ticket_id: str, decider: Callable[[View], Items]) -> list[Event]:
        """Load, decide, append at the version decided on; on a conflict decide again."""
        for _ in range(50):
            view = await self.view(ticket_id)
            items: Items = decider(view)
            if not items:
                return []
            try:
                await self.store.append(ticket_id, items, view.version)
            except Conflict:
                continue
            return [e for e, _ in items]
        raise Conflict(f"{ticket_id}: gave up after 50 conflicting attempts")

    async def apply(self, ticket_id: str, items: Items) -> None:
        """Append what the ticket does not have yet (see `_still_new`)."""
        if items:
            events = await self.decide(ticket_id, lambda v: _still_new(v, items))
            if events:
                log.info("desk_applied", events=[type_of(e) for e in events])

    async def _kv(self, name: str) -> KeyValue:
        return await self.js.key_value(f"{self.ns}_{name}")

    def _message_id(self, ticket: Ticket, what: str) -> str:
        return f"{digest_key(f'{ticket.ticket_id}:{what}')[:32]}@{tenant(ticket.mailbox)}"

    # --- the consumer ---

    async def handle(self, seq: int, env: Envelope) -> None:
        event = env.data
        if isinstance(event, MessageThreaded) and event.method != "reply.sent":
            with structlog.contextvars.bound_contextvars(ticket_id=event.ticket_id,
                                                         message_id=event.message_id):
                await self.on_message(env, event)
        elif isinstance(event, (TicketReopened, FollowupAcknowledged, TicketSplit)):
            with structlog.contextvars.bound_contextvars(ticket_id=event.ticket_id,
                                                         message_id=event.message_id):
                await self.on_decision(event)
        elif isinstance(event, TicketSolved):
            await self.schedule_close(env, event)

    async def on_message(self, env: Envelope, m: MessageThreaded) -> None:
        view = await self.view(m.ticket_id)
        ticket = view.ticket
        if m.auto or not ticket.exists or not ticket.messages:
            return  # machine mail tags, escalates and gets answered by nothing
        config = await desk_config.load(self.js, self.ns)
        desk, team = config.mailbox(ticket.mailbox), config.team_for(ticket.mailbox)
        first = ticket.messages[0].message_id == m.message_id
        items = tag_items(view, desk, m, None)
        escalation = escalation_reason(view, desk, m)
        if escalation:
            items += self.escalation_items(view, config, team, *escalation)
        elif first and team is not None and view.assigned is None:
            items += await self.rota_items(view, team, env.time)
        if first and not view.noticed:
            items += await self.notice_items(view, desk, m, env.time)
        await self.apply(m.ticket_id, items)

    async def on_decision(self, d: TicketReopened | FollowupAcknowledged | TicketSplit) -> None:
        view = await self.view(d.ticket_id)
        ticket = view.ticket
        m = next((x for x in reversed(ticket.messages) if x.message_id == d.message_id), None)
        if m is None or m.auto:
            return
        config = await desk_config.load(self.js, self.ns)
        desk, team = config.mailbox(ticket.mailbox), config.team_for(ticket.mailbox)
        items = tag_items(view, desk, m, VERDICTS[type(d)])
        if isinstance(d, TicketReopened):
            escalation = escalation_reason(view, desk, None)
            if escalation:
                items += self.escalation_items(view, config, team, *escalation)
        if isinstance(d, FollowupAcknowledged):
            items += self.kudos_items(view, config, desk, d, m)
        await self.apply(d.ticket_id, items)

    # --- what each capability adds ---

    def escalation_items(self, view: View, config: DeskConfig, team: Team | None, rule: str,
                         reason: str) -> Items:
        ticket = view.ticket
        if team is None:
            log.warning("escalation_without_team", rule=rule, mailbox=ticket.mailbox,
                        hint="map the mailbox to a team: tidydesk teams set … --mailbox")
            return []
        lead = config.agents[team.lead]
        items: Items = [
            (TicketEscalated(ticket_id=ticket.ticket_id, rule=rule, reason=reason,
                             lead=lead.name), f"escalated:{rule}"),
            (TicketAssigned(ticket_id=ticket.ticket_id, agent=lead.name, team=team.name,
                            by=f"escalation:{rule}", reason=reason), f"assigned:escalation:{rule}"),
            (NoticeSent(ticket_id=ticket.ticket_id, to=lead.email, sender=ticket.mailbox,
                        message_id=self._message_id(ticket, f"escalation:{rule}"),
                        subject=f"Escalated: [#{ticket.number}] {ticket.subject}",
                        text=f"Ticket #{ticket.number} from {ticket.requester} is yours now.\n"
                        f"Why: {reason}.\n\n{_last_customer_text(ticket)}",
                        reason=f"escalation:{rule}"), f"notice:escalation:{rule}"),
        ]
        return items

    async def rota_items(self, view: View, team: Team, at: datetime) -> Items:
        hours = hours_for(await load_hours(self.js, self.ns), view.ticket.mailbox)
        on_duty = team.on_duty(at, hours.tz if hours else "")
        if not on_duty:
            log.info("rota_nobody_on_duty", team=team.name)
            return []
        turn = await self._next_turn(team.name, view.ticket.ticket_id)
        agent = on_duty[turn % len(on_duty)]
        return [(TicketAssigned(ticket_id=view.ticket.ticket_id, agent=agent, team=team.name,
                                by=f"rota:{team.name}",
                                reason=f"on duty: {', '.join(on_duty)}"), "assigned:rota")]

    async def _next_turn(self, team: str, ticket_id: str) -> int:
        """The team's round-robin counter, advanced once per ticket (a redelivery of the
        same ticket gets the same turn); kept in KV, so a restart goes on where it was."""
        kv, key = await self._kv("desk"), f"rr.{digest_key(team)}"
        while True:
            try:
                entry = await kv.get(key)
                turn, last = msgspec.json.decode(entry.value or b"[0, \"\"]",
                                                 type=tuple[int, str])
                if last == ticket_id:
                    return turn
                try:
                    await kv.update(key, msgspec.json.encode((turn + 1, ticket_id)),
                                    last=entry.revision)
                    return turn + 1
                except KeyWrongLastSequenceError:
                    continue
            except KeyNotFoundError:
                try:
                    await kv.create(key, msgspec.json.encode((0, ticket_id)))
                    return 0
                except KeyWrongLastSequenceError:
                    continue

    async def notice_items(self, view: View, desk: MailboxDesk, m: MessageThreaded,
                           at: datetime) -> Items:
        """The one out-of-hours reply of a new ticket, if it came in outside hours and its
        sender had none within the window."""
        ticket = view.ticket
        hours = hours_for(await load_hours(self.js, self.ns), ticket.mailbox)
        if hours is None or is_open(hours, at) or not ticket.requester or (
                ticket.requester.lower() in ticket.support_addresses()):
            return []  # open, or nobody to answer but ourselves
        try:
            back = next_open(hours, at)
        except ValueError:
            return []
        if back <= datetime.now(UTC):
            return []  # handled late (the service was down): the team is back already
        if not await self._claim_sender(ticket, at, duration(desk.notice_window)):
            log.info("notice_skipped", reason="sender had one within the window")
            return []
        if self._secret is None:
            self._secret = await shared_secret(self.index)
        lang = notice_language(m.reply or m.subject)
        message_id = self._message_id(ticket, OUT_OF_HOURS)
        subject = ticket.subject if f"[#{ticket.number}]" in ticket.subject else (
            f"[#{ticket.number}] {ticket.subject}")
        await self.index.put(message_key(ticket.mailbox, message_id),
                             link(ticket.ticket_id, ticket.mailbox))  # answers thread back
        return [(ReplySent(
            ticket_id=ticket.ticket_id, message_id=message_id, agent="",
            text=out_of_hours_notice(lang, back), sender=ticket.mailbox, to=ticket.requester,
            subject=f"Re: {subject}",
            reply_to=reply_address(self._secret, ticket.ticket_id, ticket.mailbox),
            in_reply_to=m.message_id, references=(m.message_id,), auto=OUT_OF_HOURS),
            message_id)]

    async def _claim_sender(self, ticket: Ticket, at: datetime, window: timedelta) -> bool:
        """Whether this ticket may send its sender a notice: none to them within `window`
        (a redelivery for the same ticket keeps its claim)."""
        kv = await self._kv("desk")
        key = f"notice.{digest_key(f'{tenant(ticket.mailbox)}|{ticket.requester.lower()}')}"
        mine = msgspec.json.encode((ticket.ticket_id, at))
        while True:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                try:
                    await kv.create(key, mine)
                    return True
                except KeyWrongLastSequenceError:
                    continue
            owner, when = msgspec.json.decode(entry.value or b"", type=tuple[str, datetime])
            if owner == ticket.ticket_id:
                return True
            if abs(at - when) < window:
                return False
            try:
                await kv.update(key, mine, last=entry.revision)
                return True
            except KeyWrongLastSequenceError:
                continue

    def kudos_items(self, view: View, config: DeskConfig, desk: MailboxDesk,
                    d: FollowupAcknowledged, m: MessageThreaded) -> Items:
        agent = d.credited_agent or view.last_agent
        if not agent or d.message_id in view.thanked:
            return []
        ticket = view.ticket
        items: Items = [(AgentThanked(ticket_id=ticket.ticket_id, agent=agent,
                                      message_id=d.message_id), f"thanked:{d.message_id}")]
        known = config.agents.get(agent.lower())
        if desk.kudos_forward and known is not None:
            items.append((NoticeSent(
                ticket_id=ticket.ticket_id, to=known.email, sender=ticket.mailbox,
                message_id=self._message_id(ticket, f"kudos:{d.message_id}"),
                subject=f"Kudos: [#{ticket.number}] {ticket.subject}",
                text=f"{m.sender} thanked you for ticket #{ticket.number}:\n\n{m.reply}",
                reason="kudos"), f"notice:kudos:{d.message_id}"))
        return items

    # --- auto-close ---

    async def schedule_close(self, env: Envelope, solved: TicketSolved) -> None:
        """Remember when a solved ticket is due to close (its mailbox's auto_close)."""
        ticket = await self.store.load(solved.ticket_id)
        after = (await desk_config.load(self.js, self.ns)).mailbox(ticket.mailbox).auto_close
        if not after:
            return
        due = env.time + duration(after)
        kv = await self._kv("autoclose")
        await kv.put(solved.ticket_id, msgspec.json.encode((due, env.time)))
        log.info("auto_close_scheduled", ticket_id=solved.ticket_id, due=due.isoformat())

    async def sweep(self, now: datetime | None = None) -> int:
        """Close every due ticket still solved as it was when scheduled; how many closed."""
        now = now or datetime.now(UTC)
        kv = await self._kv("autoclose")
        try:
            keys = await kv.keys()
        except NoKeysError:
            return 0
        closed = 0
        for ticket_id in keys:
            try:
                entry = await kv.get(ticket_id)
            except KeyNotFoundError:
                continue
            due, solved_at = msgspec.json.decode(entry.value or b"",
                                                 type=tuple[datetime, datetime])
            if due > now:
                continue

            def decider(v: View, solved_at: datetime = solved_at) -> Items:
                t = v.ticket
                if t.status != "solved" or t.solved_at != solved_at:
                    return []  # reopened, closed or solved again since: not this schedule
                return [(TicketClosed(ticket_id=t.ticket_id, agent="auto-close"),
                         f"auto-close@{t.version}")]

            closed += bool(await self.decide(ticket_id, decider))
            with contextlib.suppress(KeyWrongLastSequenceError):  # rescheduled meanwhile
                await kv.delete(ticket_id, last=entry.revision)
        return closed

    async def sweep_forever(self) -> None:
        while True:
            try:
                closed = await self.sweep()
                if closed:
                    log.info("auto_closed", tickets=closed)
            except Exception:
                log.exception("auto_close_sweep_failed")
            await asyncio.sleep(self.sweep_every)


def _still_new(view: View, items: Items) -> Items:
    """The planned items the ticket does not have yet (decided again after a conflict or on
    a redelivery): each event once per key, a tag the ticket has is not added again, a rota
    assignment only to an unassigned ticket, one out-of-hours notice."""
    out: Items = []
    for event, key in items:
        if _event_id(view.ticket.ticket_id, event, key) in view.ids:
            continue
        match event:
            case TicketTagged(tag=tag) if tag in view.tags:
                continue
            case TicketAssigned(by=by) if by.startswith("rota:") and view.assigned:
                continue
            case ReplySent(auto=auto) if auto == OUT_OF_HOURS and view.noticed:
                continue
        out.append((event, key))
    return out


def _event_id(ticket_id: str, event: Event, key: str) -> str:
    """The id `envelope` gives the event appended under `key` (see events.envelope)."""
    return hashlib.sha256(f"{type_of(event)}\0{ticket_id}\0{key}".encode()).hexdigest()[:32]


def _last_customer_text(ticket: Ticket) -> str:
    for m in reversed(ticket.messages):
        if m.method != "reply.sent":
            return f"{m.sender} wrote:\n{m.reply}"
    return ""


async def run(settings: Settings) -> None:
    health.register("consumer", health.waiting("connecting to JetStream"))
    nc, js = await open_bus(settings, "tidydesk-desk")
    health.register("consumer", health.consumer(js, settings.namespace, DURABLE))
    service = DeskService(js, settings)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(service.sweep_forever())
            tasks.create_task(consume(js, settings.namespace, DURABLE, service.handle,
                                      concurrency=settings.consumer_concurrency))
    finally:
        await close(nc)  # unacked work is redelivered to the next instance
