"""Two threading processes on one durable consumer never split a conversation."""

from __future__ import annotations

import asyncio
import os
import random
import sys

from nats.aio.client import Client

from tests.conftest import eventually, mail
from tidydesk.common.store import JetStreamEventStore, KvIndex, RawStore, unlink
from tidydesk.ingest.intake import Intake
from tidydesk.threading.engine import message_key


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

        async def all_threaded() -> dict[str, str] | None:
            found = {}
            for _, mid, _ in mails:
                value = await index.get(message_key("support@acme.example", mid))
                if value is None:
                    return None
                found[mid] = unlink(value)[0]
            store = JetStreamEventStore(js, ns)
            for mid, tid in found.items():
                if not (await store.load(tid)).has_message(mid):
                    return None
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
