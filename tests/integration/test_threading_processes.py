"""Two threading processes on one durable consumer never split a conversation nor let a
reply open its parent's ticket."""

from __future__ import annotations

import asyncio
import os
import random
import sys

from nats.aio.client import Client

from tests.conftest import eventually, mail
from tidydesk.common.store import (
    JetStreamEventStore,
    KvIndex,
    RawStore,
    digest_key,
    message_key,
    unlink,
)
from tidydesk.ingest.intake import Intake
from tidydesk.tickets.mailbox import tenant
from tidydesk.tickets.ticket import Ticket

MAILBOX = "support@acme.example"  # the To of every test mail


async def test_two_instances_thread_interleaved_conversations(nc: Client, nats_url: str,
                                                              ns: str) -> None:
    js = nc.jetstream()
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_LOG_LEVEL": "warning"}
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-m", "tidydesk.threading",
                                                  env=env) for _ in range(2)]
    try:
        intake = Intake(JetStreamEventStore(js, ns), RawStore(js, ns))
        mails = []
        for c in range(25):
            root = f"c{c}-0@example.com"
            mails.append((c, root, mail(root, f"Conversation {c}", sender=f"u{c}@example.com",
                                        subject=f"Case {c}")))
            for turn in (1, 2):
                mid = f"c{c}-{turn}@example.com"
                mails.append((c, mid, mail(mid, "more", sender=f"u{c}@example.com",
                                           subject=f"Re: Case {c}",
                                           in_reply_to=f"c{c}-{turn - 1}@example.com",
                                           references=tuple(f"c{c}-{t}@example.com"
                                                            for t in range(turn)))))
        random.Random(7).shuffle(mails)  # replies often arrive before their parents
        for _, _, raw in mails:
            await intake.accept(raw)
        index = KvIndex(js, ns)

        async def all_threaded() -> dict[str, str]:  # empty until all are
            found = {}
            for _, mid, _ in mails:
                value = await index.get(message_key(MAILBOX, mid))
                if value is None:
                    return {}
                found[mid] = unlink(value)[0]
            store = JetStreamEventStore(js, ns)
            for mid, tid in found.items():
                if not (await store.load(tid)).has_message(mid):
                    return {}
            return found

        tickets = await eventually(all_threaded, within=60)
        by_conversation: dict[int, set[str]] = {}
        for c, mid, _ in mails:
            by_conversation.setdefault(c, set()).add(tickets[mid])
        split = {c: t for c, t in by_conversation.items() if len(t) > 1}
        assert not split, split
        assert len({next(iter(t)) for t in by_conversation.values()}) == 25
        store = JetStreamEventStore(js, ns)
        for tid in set(tickets.values()):
            ticket = await store.load(tid)
            assert len(ticket.messages) == 3  # each message exactly once
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            await asyncio.wait_for(p.wait(), 10)


async def test_a_reply_sent_with_its_parent_to_another_instance_does_not_open_its_ticket(
        nc: Client, nats_url: str, ns: str) -> None:
    """Parent and reply published together often go to two instances: the reply may find
    the parent's claim before the parent's ticket exists. Only the message a ticket is named
    after opens it (as its requester, with its subject); the reply waits and joins it."""
    js = nc.jetstream()
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_LOG_LEVEL": "warning"}
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-m", "tidydesk.threading",
                                                  env=env) for _ in range(2)]
    try:
        async def both_pulling() -> bool:  # else the first one fetches every pair alone
            info = await js.consumer_info(f"{ns.upper()}_EVENTS", "threading")
            return (info.num_waiting or 0) >= 2

        await eventually(both_pulling, within=30)
        intake = Intake(JetStreamEventStore(js, ns), RawStore(js, ns))
        pairs = []
        for c in range(40):  # the colleague is in Cc of the parent and the reply: in either
            parent, reply = f"p{c}@example.com", f"r{c}@example.com"  # order no one is held
            pairs.append((parent, reply))
            await asyncio.gather(
                intake.accept(mail(parent, "The printer is broken", sender=f"u{c}@example.com",
                                   subject=f"Case {c}", extra=f"Cc: v{c}@example.com\r\n")),
                intake.accept(mail(reply, "Same here", sender=f"v{c}@example.com",
                                   subject=f"Re: Case {c}", in_reply_to=parent,
                                   extra=f"Cc: u{c}@example.com\r\n")))
        index, store = KvIndex(js, ns), JetStreamEventStore(js, ns)

        async def threaded() -> dict[str, Ticket]:  # empty until all are
            found: dict[str, Ticket] = {}
            for mid in (m for pair in pairs for m in pair):
                value = await index.get(message_key(MAILBOX, mid))
                ticket = value and await store.load(unlink(value)[0])
                if not ticket or not ticket.has_message(mid):
                    return {}
                found[mid] = ticket
            return found

        tickets = await eventually(threaded, within=90)
        for parent, reply in pairs:
            ticket = tickets[parent]
            assert tickets[reply].ticket_id == ticket.ticket_id, (parent, reply)
            assert not ticket.held, ticket.held
            assert [m.message_id for m in ticket.messages] in ([parent, reply], [reply, parent])
            opener = ticket.messages[0]  # the ticket is named after the mail that opened it
            assert ticket.ticket_id == digest_key(tenant(MAILBOX) + "\0" + opener.message_id
                                                  )[:24], (ticket.ticket_id, opener.message_id)
            assert (ticket.requester, ticket.subject) == (opener.sender, opener.subject)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            await asyncio.wait_for(p.wait(), 10)
