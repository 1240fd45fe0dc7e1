"""Which ticket does a received message belong to?

The same code runs in the threading service (JetStream store, KV index) and offline in
`tidydesk thread` (in-memory adapters). Order of evidence, recorded as `method`:
out-of-order (a reply that arrived first claimed this message), in-reply-to / references,
reply-token (support+<token>@…), subject-number ([#3322]), content (the same requester's
open ticket, only on strong evidence of the same request and never for machine mail; weaker
candidates are recorded as `related`), else a new ticket.

Replies that arrive before their parent claim its Message-ID for their own ticket; when the
parent arrives and its own ancestors name another ticket, the early replies move there
(`conversation.moved` + `conversation.adopted`). Mail joined by headers or [#N] from an
address the ticket has not seen (nor an agent; never the support address itself) is held
(`message.held`) for an agent; reply-token mail is authorised by its token. A From that a
trusted relay's Authentication-Results calls forged (dmarc=fail) is held even when the
address is known; a verified one (pass) is noted among the reasons. An auto-reply
that names no ticket is recorded (`message.auto_recorded`) and opens none.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from tidydesk.common import parking
from tidydesk.common.events import (
    AutoRecorded,
    ConversationMoved,
    Event,
    MessageHeld,
    MessageReceived,
    MessageThreaded,
    ParticipantsSeen,
    TicketOpened,
)
from tidydesk.common.store import (
    Conflict,
    EventStore,
    Index,
    OneRead,
    digest_key,
    link,
    message_key,
    unlink,
)
from tidydesk.threading import similarity
from tidydesk.tickets import conversation
from tidydesk.tickets.conversation import MAX_HOPS, merge_at
from tidydesk.tickets.mailbox import tenant
from tidydesk.tickets.ticket import Ticket
from tidydesk.tickets.tokens import token_ticket
from tidydesk.tickets.view import view

LOOKUP_REFERENCES = 20  # the nearest References are enough to find a known ancestor
OPEN = ("open", "pending")
RELATED_FLOOR = 0.25  # below the join threshold but worth suggesting to an agent
LINKS = ("in-reply-to", "references", "reply-token")  # evidence that moves early replies
CHECKED = ("in-reply-to", "references", "out-of-order", "subject-number")  # sender-checked
Outcome = MessageThreaded | MessageHeld | AutoRecorded
OPEN_POLLS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)  # s between looks at a ticket being opened


def candidates(msg: MessageReceived) -> list[str]:
    """Message-IDs worth looking up, nearest ancestor first."""
    ids = list(msg.in_reply_to) + list(reversed(msg.references[-LOOKUP_REFERENCES:]))
    return list(dict.fromkeys(i for i in ids if i != msg.message_id))


def locate(msg: MessageReceived, known: Mapping[str, str]) -> tuple[str | None, str]:
    """(ticket id, method) from headers, or (None, "new") when nothing known is named."""
    for mid in msg.in_reply_to:
        if mid in known:
            return known[mid], "in-reply-to"
    for mid in reversed(msg.references):
        if mid in known:
            return known[mid], "references"
    return None, "new"


def auto_subject(msg: MessageReceived) -> str:
    """The subject an unthreaded auto-reply is recorded on (no ticket behind it)."""
    return "auto-" + digest_key(tenant(msg.mailbox) + "\0" + msg.message_id)[:24]


def new_ticket_id(msg: MessageReceived) -> str:
    """Deterministic per tenant, so a redelivered message re-finds the ticket it opened."""
    return digest_key(tenant(msg.mailbox) + "\0" + msg.message_id)[:24]


class Options(msgspec.Struct, frozen=True, kw_only=True):
    subject_number: str = r"\[#(\d{1,12})\]"  # one group: the ticket number
    threshold: float = similarity.DEFAULT_THRESHOLD
    thresholds: dict[str, float] = {}  # per mailbox (plus-address ignored)
    same_domain: bool = False  # also consider open tickets of the sender's organisation
    use_headers: bool = True  # False: measure the content heuristic alone
    content_join: bool = True  # False: headers only (the baseline content joining must beat)
    auto_wait: float = 0.0  # s an auto-reply naming an unseen parent waits for it (service: 60)
    open_wait: float = 0.0  # s a mail waits for another mail to open their ticket (service: 60)

    @classmethod
    def parse(cls, subject_number: str, thresholds: str, same_domain: bool) -> Options:
        """From settings: thresholds as "0.55" or "0.55,billing@acme.example=0.7"."""
        default, per = similarity.DEFAULT_THRESHOLD, {}
        for part in filter(None, (p.strip() for p in thresholds.split(","))):
            box, _, value = part.rpartition("=")
            if box:
                per[box.lower()] = float(value)
            else:
                default = float(value)
        return cls(subject_number=subject_number or cls.subject_number, threshold=default,
                   thresholds=per, same_domain=same_domain)

    def threshold_for(self, mailbox: str) -> float:
        local, _, domain = mailbox.lower().partition("@")
        return self.thresholds.get(f"{local.split('+')[0]}@{domain}", self.threshold)


@dataclass
class Verdict:
    ticket_id: str | None = None
    method: str = "new"
    confidence: float = 1.0
    reasons: list[str] = field(default_factory=list)
    related: str | None = None
    related_confidence: float = 0.0
    vouched: set[str] = field(default_factory=set)  # senders of tickets an agent merged in


class Threader:
    """Puts messages into tickets through the EventStore and Index ports."""

    def __init__(self, store: EventStore, index: Index, options: Options | None = None,
                 secret: bytes = b"") -> None:
        self.store, self.index, self.secret = OneRead(store), index, secret
        self.options = options or Options()

    async def find(self, msg: MessageReceived, at: datetime) -> Verdict:
        """Where the evidence points, before any claim is made."""
        v = Verdict()
        if self.options.use_headers:
            known = {}
            for mid in candidates(msg):
                ticket = self._follow(await self._lookup(msg.mailbox, mid), msg, v)
                if ticket:
                    known[mid] = ticket
            v.ticket_id, v.method = locate(msg, known)
            tid = None if v.ticket_id else token_ticket(self.secret, msg.mailbox)
            if tid:  # the token is signed for the recipient's own domain
                v.ticket_id, v.method = tid, "reply-token"
            if v.ticket_id is None:
                await self._subject_number(msg, v)
        if v.ticket_id is None and self.options.content_join:
            await self._content(msg, at, v)
        if v.ticket_id is not None:
            path = await self._path(v.ticket_id)
            v.ticket_id = path[-1].ticket_id
            for t in path[:-1]:  # an agent's merge makes the merged ticket's people known
                if not t.moved:
                    v.vouched |= t.customers() | t.agents
        return v

    async def _lookup(self, mailbox: str, message_id: str, legacy: bool = True) -> str | None:
        """The index value of a Message-ID in this tenant; with `legacy` also the key
        before tenants (`m:{id}`, written before keys were scoped to tenants), checked
        by `_follow`."""
        value = await self.index.get(message_key(mailbox, message_id))
        return value if value or not legacy else await self.index.get(f"m:{message_id}")

    @staticmethod
    def _follow(value: str | None, msg: MessageReceived, v: Verdict) -> str | None:
        """The ticket an index value names, unless it belongs to another tenant."""
        if not value:
            return None
        ticket_id, owner = unlink(value)
        if owner and msg.mailbox and owner != tenant(msg.mailbox):
            v.reasons.append(f"ignored a link to ticket {ticket_id} of another mailbox "
                             f"({owner})")
            return None
        return ticket_id

    async def _subject_number(self, msg: MessageReceived, v: Verdict) -> None:
        found = re.search(self.options.subject_number, msg.subject)
        if not found:
            return
        tid = self._follow(await self.index.get(f"n:{int(found.group(1))}"), msg, v)
        if not tid:
            return
        ticket = await self.store.load(await self.live(tid))
        v.ticket_id, v.method = tid, "subject-number"
        v.reasons.append(f"subject names #{ticket.number}")  # the sender is checked on write

    async def _content(self, msg: MessageReceived, at: datetime, v: Verdict) -> None:
        threshold = self.options.threshold_for(msg.mailbox)
        keys = [f"q:{msg.sender}"]
        if self.options.same_domain:
            keys.append(f"q:@{tenant(msg.sender)}")
        seen: set[str] = set()
        for key in keys:
            for tid in msgspec.json.decode(await self.index.get(key) or "[]", type=list[str]):
                if tid in seen:
                    continue
                seen.add(tid)
                ticket = await self.store.load(tid)
                if ticket.status not in OPEN or (
                    msg.mailbox and tenant(ticket.mailbox) != tenant(msg.mailbox)
                ):
                    continue
                idle = (at - ticket.updated_at).total_seconds() / 86400 \
                    if ticket.updated_at else None
                j = similarity.judge(
                    view(ticket, None, at), msg.sender, msg.subject, msg.reply, idle_days=idle,
                    auto=msg.auto,
                )
                if j.machine is not None:
                    v.reasons.append(f"#{ticket.number}: not joined by content, machine mail "
                                     f"({j.machine})")
                    continue
                conf = j.confidence
                best = v.confidence if v.method == "content" else 0.0
                if j.joins(threshold) and conf > best:  # per-mailbox threshold decides
                    v.ticket_id, v.method, v.confidence = tid, "content", conf
                    v.reasons = [f"same request as #{ticket.number} (p={conf:.2f})", *j.reasons]
                elif conf >= RELATED_FLOOR and conf > v.related_confidence:
                    v.related, v.related_confidence = tid, conf
                    why = "weak evidence" if not j.strong else "below the threshold"
                    v.reasons.append(f"#{ticket.number} looks related (p={conf:.2f}) but {why} "
                                     f"(threshold {threshold:.2f}): new ticket, suggested as "
                                     "related")

    async def thread(self, msg: MessageReceived, at: datetime) -> Outcome | None:
        """Thread one message; None when it was threaded (held, recorded) before."""
        with self.store.unit():  # each ticket read once; the appends check it is current
            return await self._thread(msg, at)

    async def _thread(self, msg: MessageReceived, at: datetime) -> Outcome | None:
        key = message_key(msg.mailbox, msg.message_id)
        # an ancestor may be indexed by an old version; a mail being threaded is not: its own
        # key is written by this version (a redelivery) or by a reply that arrived first
        own = self._follow(await self._lookup(msg.mailbox, msg.message_id, legacy=False), msg,
                           Verdict())
        if own:
            own = await self.live(own)
            if (await self.store.load(own)).has_message(msg.message_id):
                return None
        v = await self.find(msg, at)
        if own:
            v = await self._resolve(msg, own, v)
        elif v.ticket_id is None and msg.auto:
            if candidates(msg) and _age(at) < self.options.auto_wait:
                raise parking.Later("an auto-reply to a mail not seen yet: wait for it")
            return await self._auto(msg, v)
        target = v.ticket_id or new_ticket_id(msg)
        claimed = ""  # the ticket our claims of unknown ancestors name
        if (v.ticket_id is None or v.method == "out-of-order") and self.options.use_headers:
            # Claim the unknown ancestors: a sibling or parent threaded at the same moment
            # by another instance either sees our claim or we see theirs.
            for mid in candidates(msg):
                mine = link(target, msg.mailbox)
                value = await self.index.claim(message_key(msg.mailbox, mid), mine)
                if value == mine:
                    claimed = claimed or target
                    continue
                holder = self._follow(value, msg, Verdict())
                holder = holder and await self.live(holder)
                if not holder or holder == target:
                    continue
                if own:  # our early replies join the sibling that claimed the ancestor
                    v = await self._resolve(msg, own, Verdict(
                        ticket_id=holder, method="references", reasons=list(v.reasons)))
                    target = v.ticket_id or target
                else:
                    target, v.ticket_id, v.method = holder, holder, "references"
                break
        mine = link(target, msg.mailbox)
        holder = self._follow(await self.index.claim(key, mine), msg, Verdict())
        if holder and holder != target:  # a reply to this message claimed it meanwhile
            v = await self._resolve(msg, await self.live(holder), v)
            target = v.ticket_id or target
        if claimed and claimed != target:  # claims for a ticket we did not open: forward it
            await self.move(claimed, target, f"{msg.message_id} went to {target} instead")
        if not own and holder == target == new_ticket_id(msg):
            # this mail claimed its own id first, for the ticket named after it: nothing can
            # be in that ticket but this mail (a duplicate delivery at once meets us at the
            # append's expected sequence 0), so it is not read before it is opened
            self.store.assume(Ticket(ticket_id=target))
        return await self._record(msg, target, v, at)

    async def _resolve(self, msg: MessageReceived, own: str, v: Verdict) -> Verdict:
        """This message was claimed by `own` (its replies arrived first). When its own
        ancestors name another ticket, those replies move there; else it joins `own`."""
        if v.ticket_id and v.ticket_id != own and v.method in LINKS:
            # the early replies follow; those of senders the target has not seen arrive held
            moved = await self.move(own, v.ticket_id, f"{msg.message_id} links "
                                    f"{own} to {v.ticket_id} ({v.method})")
            v.ticket_id = await self.live(v.ticket_id)
            v.reasons.append(f"tickets {own} and {v.ticket_id} are one conversation: {moved} "
                             f"messages moved")
            return v
        other = v if v.ticket_id and v.ticket_id != own else None
        out = Verdict(ticket_id=own, method="out-of-order",
                      reasons=["a reply to this message arrived first"])
        if other is not None:  # kept apart: an agent may merge
            out.related, out.related_confidence = other.ticket_id, other.confidence
            out.reasons += [*other.reasons, f"also linked to ticket {other.ticket_id} "
                            f"({other.method}): merge candidate"]
        return out

    def unverified(self, msg: MessageReceived, ticket: Ticket, method: str,
                   vouched: set[str] | frozenset[str] = frozenset()) -> str | None:
        """Why the sender may not join `ticket` by `method` unchecked, None if it may."""
        if not ticket.exists:
            return None
        sender = msg.sender.lower()
        if msg.sender_auth == "fail" and method in (*CHECKED, "content"):
            return (f"the trusted relay found From {sender} forged (dmarc=fail): held even "
                    "though the address is known here")
        if method not in CHECKED:
            return None
        support = ticket.support_addresses()
        local, _, domain = msg.mailbox.lower().partition("@")
        support.add(f"{local.split('+')[0]}@{domain}")
        if sender in support:
            return f"sent from the support address {sender}, not by a customer"
        if sender in ticket.customers() or sender in ticket.agents or sender in vouched:
            return None
        return (f"{sender} is neither the requester, a participant nor an agent of "
                f"#{ticket.number}")

    async def live(self, ticket_id: str) -> str:
        """The ticket a (possibly merged or moved) ticket's conversation continues in."""
        return await conversation.live(self.store, self.index, ticket_id)

    async def _path(self, ticket_id: str) -> list[Ticket]:
        return await conversation.path(self.store, self.index, ticket_id)

    async def move(self, source: str, into: str, reason: str) -> int:
        """Move every message of `source` into `into`: `conversation.moved` on the source
        at its version, then `conversation.adopted` on the target at its version.

        The early replies (`source`) follow their ancestor's ticket (`into`). The first
        instance to join a pair claims its direction (`mv:a|b`); every other instance
        follows that claim, so two tickets never move into each other.
        """
        def out(ticket: Ticket) -> list[tuple[Event, str]]:
            if ticket.merged_into is not None:
                return []
            ids = (*(m.message_id for m in ticket.messages), *ticket.held)
            return [(ConversationMoved(ticket_id=ticket.ticket_id, into=into, message_ids=ids,
                                       reason=reason), f"moved:{into}")]

        for _ in range(5 * MAX_HOPS):  # hops, and conflicts with other writers
            source, into = await self.live(source), await self.live(into)
            if source == into:
                return 0
            pair = "|".join(sorted((source, into)))
            decided = await self.index.claim(f"mv:{pair}", f"{source}>{into}")
            source, _, into = decided.partition(">")  # maybe the other way: already decided
            if await self.live(into) == source:  # joined meanwhile (would be a cycle)
                return 0
            ticket = await self.store.load(source)
            if items := out(ticket):  # as an agent's merge: no loop with one of those either
                try:
                    await merge_at(self.store, ticket, await self.store.load(into), items)
                except Conflict:
                    self.store.forget(source)
                    self.store.forget(into)
                    await asyncio.sleep(random.uniform(0, 0.05))  # a tie ends
                    continue
                ticket = await self.store.load(source)
            if ticket.moved:
                await self._adopt(ticket)
            if ticket.merged_into == into:
                return len(ticket.messages) + len(ticket.held)
            # the source was merged or moved elsewhere meanwhile: join where it went
            self.store.forget(source)
            self.store.forget(into)
        raise RuntimeError(f"tickets {source} and {into} keep moving")

    async def _adopt(self, source: Ticket) -> None:
        await conversation.adopt(self.store, self.index, source)

    async def _auto(self, msg: MessageReceived, v: Verdict) -> AutoRecorded | None:
        """An auto-reply that names no ticket: recorded on its own subject, no ticket."""
        assert msg.auto is not None
        event = AutoRecorded(message_id=msg.message_id, sender=msg.sender, mailbox=msg.mailbox,
                             auto=msg.auto, subject=msg.subject,
                             reasons=(*v.reasons, "auto-reply to nothing known: no ticket"))
        subject = auto_subject(msg)
        written = await self.store.decide(subject, lambda t: [] if t.has_message(
            msg.message_id) else [(event, msg.message_id)])
        return event if written else None

    async def _record(self, msg: MessageReceived, target: str, v: Verdict, at: datetime
                      ) -> Outcome | None:
        hops, polls = 0, iter(OPEN_POLLS)
        while hops < MAX_HOPS:
            into = await self.live(target)
            if into != target:
                v.reasons.append(f"ticket {target} was merged into {into}")
                target = into
            ticket = await self.store.load(target)
            if self._opened_elsewhere(msg, ticket, at):
                delay = next(polls, None)
                if delay is None:
                    raise parking.Later(f"ticket {target} is being opened by another mail")
                await asyncio.sleep(delay)
                self.store.forget(target)
                continue
            written, retry = await self._write(msg, ticket, v)
            if not retry:
                return written
            hops += 1  # moved or merged while we decided: follow it
        raise RuntimeError(f"{msg.message_id}: ticket {target} keeps moving")

    def _opened_elsewhere(self, msg: MessageReceived, ticket: Ticket, at: datetime) -> bool:
        """Whether `ticket` is named after another mail whose instance is opening it (it
        claimed the name, the mail is not in yet). Only that mail opens it, as requester and
        subject; this one waits, then joins checked, as if it had come later. After
        `open_wait` s it opens the ticket itself (that instance died, its mail was parked)."""
        return (ticket.merged_into is None and not ticket.messages and not ticket.held
                and ticket.ticket_id != new_ticket_id(msg) and _age(at) < self.options.open_wait)

    async def _write(self, msg: MessageReceived, ticket: Ticket, v: Verdict
                     ) -> tuple[Outcome | None, bool]:
        """Append to `ticket`; (what was written, whether it moved meanwhile)."""
        target = ticket.ticket_id
        opened: TicketOpened | None = None
        if not ticket.exists:
            number = await self.index.next_number(target)
            opened = TicketOpened(ticket_id=target, number=number, subject=msg.subject,
                                  requester=msg.sender, mailbox=msg.mailbox,
                                  message_id=msg.message_id)
            await self.index.put(f"n:{number}", link(target, msg.mailbox))
            await self._remember_open(msg.sender, target)
        threaded = MessageThreaded(
            ticket_id=target, message_id=msg.message_id, method=v.method,
            confidence=round(v.confidence, 3), sender=msg.sender, subject=msg.subject,
            reply=msg.reply, auto=msg.auto, related=v.related, reasons=(*v.reasons, *(
                ["From verified by the trusted relay"] if msg.sender_auth == "pass" else [])),
            related_confidence=round(v.related_confidence, 3),
        )
        outcome: Outcome = threaded
        moved = False

        def decide(ticket: Ticket) -> list[tuple[Event, str]]:
            nonlocal moved, outcome
            items: list[tuple[Event, str]] = []
            if ticket.merged_into is not None:
                moved = True
                return items
            if opened is not None and not ticket.exists:
                items.append((opened, "opened"))
            if ticket.has_message(msg.message_id):
                return items
            why = self.unverified(msg, ticket, v.method, v.vouched)  # against fresh state
            outcome = threaded if why is None else MessageHeld(
                **msgspec.structs.asdict(threaded), reason=why)
            # the participants land before the message: whoever sees it sees them
            if why is None and (seen := self._new_participants(msg, ticket)):
                items.append((ParticipantsSeen(ticket_id=target, message_id=msg.message_id,
                                               addresses=seen), f"seen:{msg.message_id}"))
            items.append((outcome, msg.message_id))
            return items

        written = await self.store.decide(target, decide)
        return (outcome if written else None), moved

    @staticmethod
    def _new_participants(msg: MessageReceived, ticket: Ticket) -> tuple[str, ...]:
        """To/Cc addresses of a threaded message the ticket has not seen yet."""
        local, _, domain = msg.mailbox.lower().partition("@")
        known = ticket.customers() | ticket.support_addresses() | {
            f"{local.split('+')[0]}@{domain}", msg.sender.lower()}
        return tuple(sorted({a.lower() for a in (*msg.to, *msg.cc)} - known - {""}))

    async def _remember_open(self, sender: str, ticket_id: str) -> None:
        await conversation.remember_open(self.index, sender, ticket_id,
                                         organisation=self.options.same_domain)


def _age(at: datetime) -> float:
    """Seconds since `at` (naive: UTC)."""
    return (datetime.now(UTC) - (at if at.tzinfo else at.replace(tzinfo=UTC))).total_seconds()
